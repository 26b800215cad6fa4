//! Writes each target's seed corpus (`hongyan_fuzz::seeds`) to `fuzz/seeds/<target>/`,
//! replacing the `capture-*` files and keeping the `crash-*` regressions.

use std::fs;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for target in ["frame_codec", "packet_decode", "payloads"] {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("capture-"))
            {
                fs::remove_file(path)?;
            }
        }
        for (name, contents) in hongyan_fuzz::seeds::for_target(target) {
            fs::write(dir.join(name), contents)?;
        }
    }
    Ok(())
}
