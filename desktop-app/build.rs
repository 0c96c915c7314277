//! Tauri's build step. The screens are built by Vite into `ui/dist` (`npm ci && npm run
//! build` in `ui/`, which `scripts/lib/desktop.sh` runs) and embedded in the binary by
//! this build script (Tauri's codegen here rather than in `generate_context!`, so a new
//! build of the screens re-embeds them: cargo reruns it when `ui/dist` changes). A
//! checkout where they are not built yet still compiles (`cargo check`, clippy) and gets
//! a page that says how to build them.

use std::path::Path;

const PLACEHOLDER: &str = "<!doctype html><meta charset=utf-8><title>도란도란</title>\
<p>The screens are not built: run <code>npm ci &amp;&amp; npm run build</code> in \
<code>desktop-app/ui</code>, then build the app again.</p>";

fn main() {
    let index = Path::new("ui/dist/index.html");
    if !index.exists() {
        std::fs::create_dir_all("ui/dist").expect("ui/dist can be created");
        std::fs::write(index, PLACEHOLDER).expect("the placeholder page can be written");
    }
    let attributes = tauri_build::Attributes::new().codegen(tauri_build::CodegenContext::new());
    if let Err(e) = tauri_build::try_build(attributes) {
        panic!("tauri-build: {e:#}");
    }
}
