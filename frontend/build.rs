//! Keeps each static datum in a data segment of its own in the WASM build, so the
//! splitter (`cargo leptos --split`) can move a lazy page's strings into that page's
//! chunk. With wasm-ld's merged segments, release builds left every page's static data
//! in the main chunk (cargo-leptos issue 679; measured in docs/benchmarks.md, "Levers").
//! A link argument touches only the final link, so no dependency is rebuilt for it.

fn main() {
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch.starts_with("wasm"));
    if wasm {
        println!("cargo:rustc-link-arg-cdylib=--no-merge-data-segments");
    }
}
