//! Every public item of the SDK has an example in its documentation (issue 14:
//! "`cargo doc` with examples for every public item"). rustdoc's
//! `missing_doc_code_examples` lint needs nightly, so this reads the sources:
//! each `pub` fn, struct, enum, type and trait (not `pub(crate)`) must have a
//! code block in the `///` comment right above it (attributes may sit between).

use std::path::Path;

fn items_without_example(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(rest) = t.strip_prefix("pub ") else {
            continue;
        };
        let rest = rest.strip_prefix("async ").unwrap_or(rest);
        let Some((kind, tail)) = rest.split_once(' ') else {
            continue;
        };
        if !matches!(kind, "fn" | "struct" | "enum" | "type" | "trait") {
            continue;
        }
        let name: String = tail.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let mut doc = Vec::new();
        for prev in lines[..i].iter().rev() {
            let p = prev.trim_start();
            if p.starts_with("#[") {
                continue;
            }
            match p.strip_prefix("///") {
                Some(d) => doc.push(d),
                None => break,
            }
        }
        if !doc.iter().any(|d| d.trim_start().starts_with("```")) {
            missing.push(name);
        }
    }
    missing
}

#[test]
fn every_public_item_has_a_doc_example() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            seen += text.matches("pub ").count();
            for name in items_without_example(&text) {
                missing.push(format!("{}: {name}", path.file_name().unwrap().to_string_lossy()));
            }
        }
    }
    assert!(seen > 40, "read too few items ({seen}): wrong directory?");
    assert!(missing.is_empty(), "public items without a doc example: {missing:#?}");
}

#[test]
fn the_checker_sees_a_missing_example() {
    let src = "/// Docs.\n///\n/// ```\n/// x();\n/// ```\n#[must_use]\npub fn a() {}\n\n/// No example.\npub async fn b() {}\npub(crate) fn c() {}\n";
    assert_eq!(items_without_example(src), vec!["b".to_owned()]);
}
