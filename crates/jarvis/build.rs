//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds the files of
//! `migrations/` at compile time, and Cargo does not watch them on its own (sqlx's documented
//! build script).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
