//! The dashboard's files (hand-written HTML, CSS and JavaScript modules under
//! `crates/jarvis/assets/dashboard/`), embedded with `include_bytes!` so the binary serves them
//! offline and building it needs no JavaScript toolchain. Each has a strong validator (a
//! SHA-256 prefix of its bytes) for `ETag`/`If-None-Match`.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// Its name under `/ui/` (`app.js`); the page itself is `index.html`, served at `/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
    etag: OnceLock<String>,
}

impl Asset {
    const fn new(name: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
        Asset {
            name,
            content_type,
            bytes,
            etag: OnceLock::new(),
        }
    }

    /// The strong `ETag` of its bytes, quoted (`"3f2a…"`), computed once.
    pub fn etag(&self) -> &str {
        self.etag.get_or_init(|| {
            let digest = Sha256::digest(self.bytes);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
    }
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset::new(
            $name,
            $type,
            include_bytes!(concat!("../../assets/dashboard/", $name)),
        )
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard.
pub static ASSETS: [Asset; 6] = [
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("charts.js", JS),
    asset!("pages.js", JS),
];

/// The file named `name`, if the dashboard has one.
pub fn get(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The page served at `/`.
pub fn index() -> &'static Asset {
    &ASSETS[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_found_by_name_and_has_a_stable_etag() {
        for a in &ASSETS {
            assert!(!a.bytes.is_empty(), "{} is empty", a.name);
            assert!(std::ptr::eq(get(a.name).unwrap(), a));
            assert_eq!(a.etag(), a.etag());
            assert_eq!(a.etag().len(), 26);
        }
        assert!(get("../Cargo.toml").is_none());
        assert_eq!(index().name, "index.html");
    }
}
