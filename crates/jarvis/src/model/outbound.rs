//! Where Jarvis may call out to (issue 17, docs/api.md "Outbound URLs"): agent, health-check,
//! webhook and model provider URLs are refused when they point at a link-local or cloud
//! metadata address — 169.254.0.0/16 (the AWS, ECS, Azure and GCP metadata and credentials
//! endpoints), fe80::/10, fd00:ec2::254 (AWS's IPv6 metadata), 100.100.100.200 (Alibaba
//! Cloud), and the names `metadata.google.internal` / `metadata` — unless the operator allows
//! them (`JARVIS_OUTBOUND_ALLOW`: addresses, CIDR ranges or host names). The check is of the
//! URL as written (an address literal or one of those names), at registration, so that
//! `PUT /api/v1/agents/x` with `http://169.254.170.2/v2/credentials` is a 400; a name that
//! resolves to such an address is caught at connect time (`crate::resolver`).
//!
//! The allow-list is process-wide: set once at start ([`allow`]) from the configuration, read by
//! the validation of every domain type that holds a URL.

use std::net::IpAddr;
use std::sync::OnceLock;

/// What the operator allowed (`JARVIS_OUTBOUND_ALLOW`), set once at start.
static ALLOWED: OnceLock<Allowed> = OnceLock::new();

/// Addresses, ranges and names allowed although they are refused by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowed {
    ranges: Vec<(IpAddr, u8)>,
    names: Vec<String>,
}

impl Allowed {
    /// Parses a comma-separated list of addresses (`169.254.170.2`), CIDR ranges
    /// (`169.254.0.0/16`, `fe80::/10`) and host names (`metadata.google.internal`).
    pub fn parse(raw: &str) -> Result<Allowed, String> {
        let mut out = Allowed::default();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, prefix) = match item.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (item, None),
            };
            match addr.parse::<IpAddr>() {
                Ok(ip) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    let prefix = match prefix {
                        None => max,
                        Some(p) => p
                            .parse::<u8>()
                            .ok()
                            .filter(|p| *p <= max)
                            .ok_or_else(|| format!("{item:?}: the prefix is 0 to {max}"))?,
                    };
                    out.ranges.push((ip, prefix));
                }
                Err(_) if prefix.is_none() && is_host_name(item) => {
                    out.names.push(item.to_ascii_lowercase());
                }
                Err(_) => {
                    return Err(format!(
                        "{item:?} is not an address, a CIDR range or a host name"
                    ))
                }
            }
        }
        Ok(out)
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        self.ranges
            .iter()
            .any(|(net, prefix)| in_range(ip, *net, *prefix))
    }

    fn allows_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Sets the process's allow-list (the first call wins; later ones are ignored).
pub fn allow(allowed: Allowed) {
    let _ = ALLOWED.set(allowed);
}

fn allowed() -> &'static Allowed {
    static NONE: OnceLock<Allowed> = OnceLock::new();
    ALLOWED
        .get()
        .unwrap_or_else(|| NONE.get_or_init(Allowed::default))
}

/// Whether `ip` is in `net/prefix` (IPv4-mapped IPv6 addresses compare as IPv4).
fn in_range(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let ip = canonical(ip);
    match (ip, canonical(net)) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The ranges refused unless allowed, and what each is.
const REFUSED: [(&str, u8, &str); 4] = [
    (
        "169.254.0.0",
        16,
        "a link-local address (cloud metadata and credentials endpoints)",
    ),
    ("fe80::", 10, "a link-local address"),
    ("fd00:ec2::254", 128, "the AWS instance metadata endpoint"),
    ("100.100.100.200", 32, "the Alibaba Cloud metadata endpoint"),
];

/// Host names of metadata endpoints, refused unless allowed.
const REFUSED_NAMES: [&str; 2] = ["metadata.google.internal", "metadata"];

/// Why Jarvis will not call `ip`, if it will not.
pub fn refused_ip(ip: IpAddr) -> Option<&'static str> {
    if allowed().allows_ip(ip) {
        return None;
    }
    REFUSED.iter().find_map(|(net, prefix, what)| {
        let net: IpAddr = net.parse().expect("a valid built-in range");
        in_range(ip, net, *prefix).then_some(*what)
    })
}

/// Checks the host of a URL Jarvis will call: an error saying why when it is a refused address
/// or name (see the module).
pub fn check(url: &url::Url) -> Result<(), String> {
    let why = match url.host() {
        Some(url::Host::Ipv4(ip)) => refused_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => refused_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            // A scheme the URL standard does not know (`tcp://`) leaves an address as text.
            let bare = name.trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<IpAddr>() {
                Ok(ip) => refused_ip(ip),
                Err(_) => {
                    let name = name.trim_end_matches('.');
                    (REFUSED_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
                        && !allowed().allows_name(name))
                    .then_some("a cloud metadata endpoint")
                }
            }
        }
        None => None,
    };
    match why {
        Some(what) => Err(format!(
            "{} is {what}; Jarvis does not call it unless JARVIS_OUTBOUND_ALLOW names it",
            url.host_str().unwrap_or("")
        )),
        None => Ok(()),
    }
}

/// [`check`] of a URL given as text (one that does not parse is left to the caller's own
/// validation).
pub fn check_str(raw: &str) -> Result<(), String> {
    match url::Url::parse(raw) {
        Ok(u) => check(&u),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> bool {
        check_str(raw).is_err()
    }

    #[test]
    fn metadata_and_link_local_addresses_are_refused() {
        for raw in [
            "http://169.254.170.2/v2/credentials",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://[fe80::1]:8080/",
            "http://[::ffff:169.254.169.254]/",
            "http://100.100.100.200/latest/meta-data/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "tcp://169.254.1.1:5432",
            "tcp://[fe80::2]:5432",
        ] {
            assert!(refused(raw), "{raw}");
        }
        let e = check_str("http://169.254.170.2/v2/credentials").unwrap_err();
        assert!(
            e.contains("169.254.170.2") && e.contains("JARVIS_OUTBOUND_ALLOW"),
            "{e}"
        );
    }

    #[test]
    fn ordinary_addresses_and_names_are_allowed() {
        for raw in [
            "http://127.0.0.1:8080/run",
            "http://10.0.0.5/",
            "https://api.openai.com/v1",
            "http://[::1]:9/",
            "http://169.255.0.1/",
            "http://metadata.example.com/",
            "https://hooks.slack.com/services/x",
        ] {
            assert!(!refused(raw), "{raw}");
        }
    }

    #[test]
    fn the_allow_list_parses_addresses_ranges_and_names() {
        let a = Allowed::parse("169.254.170.2, fe80::/10,metadata.google.internal").unwrap();
        assert!(a.allows_ip("169.254.170.2".parse().unwrap()));
        assert!(!a.allows_ip("169.254.170.3".parse().unwrap()));
        assert!(a.allows_ip("fe80::1".parse().unwrap()));
        assert!(a.allows_name("Metadata.Google.Internal"));
        assert_eq!(Allowed::parse("").unwrap(), Allowed::default());
        for bad in ["169.254.0.0/33", "fe80::/129", "not a host", "10.0.0.0/x"] {
            assert!(Allowed::parse(bad).is_err(), "{bad}");
        }
        assert!(in_range(
            "10.1.2.3".parse().unwrap(),
            "0.0.0.0".parse().unwrap(),
            0
        ));
    }
}
