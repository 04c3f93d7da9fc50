//! docs/sdks.md: the Rust program shown there is `src/bin/docs_sdks.rs` byte for byte (so
//! the page cannot drift from what compiles), names the crate version this suite pins, and
//! runs against the server, printing what the page says it prints.

use std::process::Command;

const PAGE: &str = include_str!("../../../docs/sdks.md");
const PROGRAM: &str = include_str!("../src/bin/docs_sdks.rs");
const MANIFEST: &str = include_str!("../Cargo.toml");

fn rust_blocks() -> Vec<&'static str> {
    PAGE.split("```rust\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .collect()
}

#[test]
fn the_page_shows_the_compiled_program_and_the_pinned_version() {
    let blocks = rust_blocks();
    assert_eq!(blocks.len(), 1, "one Rust program on the page");
    assert_eq!(
        format!("{}\n", blocks[0]),
        PROGRAM,
        "docs/sdks.md and src/bin/docs_sdks.rs differ"
    );
    assert!(PAGE.contains("cargo add workos@=3.5.0"));
    assert!(MANIFEST.contains(r#"version = "=3.5.0""#));
}

#[test]
fn the_program_runs_against_the_server_and_prints_one_line() {
    let base_url = std::env::var("STELE_BASE_URL").expect("STELE_BASE_URL");
    let api_key = std::env::var("STELE_API_KEY").expect("STELE_API_KEY");
    let output = Command::new(env!("CARGO_BIN_EXE_docs_sdks"))
        .env("STELE_URL", base_url)
        .env("STELE_API_KEY", api_key)
        .output()
        .expect("run the docs program");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let count = stdout
        .strip_prefix("Connected to Stele: ")
        .and_then(|rest| rest.strip_suffix(" organizations on the first page\n"))
        .unwrap_or_else(|| panic!("unexpected output: {stdout:?}"));
    assert!(count.parse::<u32>().is_ok(), "{stdout:?}");
}
