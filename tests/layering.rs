//! The layering ARCHITECTURE.md promises, checked on the sources: the engine (src/engine)
//! imports nothing from the kernel or a facade; the kernel (src/kernel) imports only the
//! engine and itself; facades may import anything. A failure names the file and the edge.
//! And no source file grows past [`LINES_MAX`] lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The longest a source file may grow before it is split along its concepts.
const LINES_MAX: usize = 700;

/// Which layer a source file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    Engine,
    Kernel,
    Facade,
}

fn layer_of(module: &[String]) -> Layer {
    match module.first().map(String::as_str) {
        Some("engine") => Layer::Engine,
        Some("kernel") => Layer::Kernel,
        _ => Layer::Facade,
    }
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under src/ (`src/engine/fabric/tcp.rs` is engine::fabric::tcp).
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

/// The code of a file without its comments (line comments, and the whole of doc comments,
/// which may link anywhere). Strings are kept; no `crate::` path hides in roof's strings.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate-level modules a piece of code names: `crate::a::...`, `use crate::{a, b::c}`,
/// and `super::` paths resolved from `module`.
fn targets(code: &str, module: &[String]) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(offset) = code[at..].find("crate::") {
        let start = at + offset;
        at = start + "crate::".len();
        // `$crate::` in a macro body is a facade's way of naming itself from a user's crate.
        if start > 0 && bytes[start - 1] == b'$' {
            continue;
        }
        if code[at..].starts_with('{') {
            let end = code[at..].find('}').map_or(code.len(), |end| at + end);
            for item in code[at + 1..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(vec![name]);
                }
            }
        } else {
            let name: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(vec![name]);
        }
    }
    // `super::` climbs from the file's own module (mod.rs files are their folder's module).
    let mut at = 0;
    while let Some(offset) = code[at..].find("super::") {
        let start = at + offset;
        let mut climb = 0;
        let mut cursor = start;
        while code[cursor..].starts_with("super::") {
            climb += 1;
            cursor += "super::".len();
        }
        at = cursor;
        if start >= 1 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let mut base = module.to_vec();
        for _ in 0..climb {
            base.pop();
        }
        let name: String = code[cursor..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            base.push(name);
        }
        if !base.is_empty() {
            found.insert(base);
        }
    }
    found
}

/// What a file of `layer` may not name, and why.
fn forbidden(layer: Layer, target: &[String]) -> Option<&'static str> {
    let target_layer = layer_of(target);
    match (layer, target_layer) {
        (Layer::Engine, Layer::Engine) => None,
        (Layer::Engine, _) => Some("the engine imports nothing but the engine"),
        (Layer::Kernel, Layer::Facade) => Some("the kernel imports no facade"),
        _ => None,
    }
}

fn violations(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let relative = path.strip_prefix(root.join("src")).unwrap();
        let module = module_of(relative);
        let layer = layer_of(&module);
        let code = code_of(&std::fs::read_to_string(&path).unwrap());
        for target in targets(&code, &module) {
            if let Some(why) = forbidden(layer, &target) {
                found.push(format!(
                    "src/{} -> crate::{}: {why}",
                    relative.display(),
                    target.join("::")
                ));
            }
        }
    }
    found
}

#[test]
fn the_engine_and_the_kernel_import_only_what_their_layer_may() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = violations(root);
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_every_kind_of_edge() {
    let engine = [
        "engine".to_string(),
        "fabric".to_string(),
        "tcp".to_string(),
    ];
    let seen = |code: &str| -> Vec<String> {
        targets(&code_of(code), &engine)
            .into_iter()
            .filter(|target| forbidden(Layer::Engine, target).is_some())
            .map(|target| target.join("::"))
            .collect()
    };
    assert_eq!(seen("use crate::kernel::Kernel;"), ["kernel"]);
    assert_eq!(seen("use crate::{engine::id, task::JoinHandle};"), ["task"]);
    assert_eq!(seen("let x = crate::time::now();"), ["time"]);
    assert_eq!(seen("use super::super::super::net::TcpStream;"), ["net"]);
    assert!(seen("use super::buffer::Chunk; use crate::engine::hint;").is_empty());
    assert!(seen("/// See [`crate::kernel`].\n// crate::task in a comment").is_empty());
    let kernel = ["kernel".to_string(), "run".to_string()];
    let kernel_edges: Vec<_> = targets("use crate::task::JoinHandle; use super::Kernel;", &kernel)
        .into_iter()
        .filter(|target| forbidden(Layer::Kernel, target).is_some())
        .collect();
    assert_eq!(kernel_edges, [vec!["task".to_string()]]);
}

#[test]
fn no_source_file_grows_past_the_limit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    sources(&root.join("sim"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path).unwrap().lines().count();
            (lines > LINES_MAX).then(|| format!("{} has {lines} lines", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "split along concepts: {long:?}");
}
