//! The bad-policy corpus (testdata/bad), read by the library itself: every file is refused, its
//! first error at the line and column its `# expect: LINE:COL: fragment` header names, and every
//! error points inside the file.

use std::path::{Path, PathBuf};

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_bad_policy_is_refused_at_its_expected_line_and_column() {
    let files = corpus();
    assert!(files.len() >= 30, "the corpus has {} files", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()));
        let (location, fragment) = expect.split_once(": ").unwrap();
        let (line, column) = location.split_once(':').unwrap();
        let d = match asdr_specs::load(&file) {
            Err(asdr_specs::LoadError::Invalid(d)) => d,
            Err(other) => panic!("{}: not a diagnostic: {other}", file.display()),
            Ok(_) => panic!("{} was accepted", file.display()),
        };
        let first = &d.items[0];
        assert_eq!(
            (first.span.line.to_string(), first.span.column.to_string()),
            (line.to_string(), column.to_string()),
            "{}: {}",
            file.display(),
            first.message
        );
        assert!(
            first.headline().contains(fragment),
            "{}: expected `{fragment}` in: {}",
            file.display(),
            first.headline()
        );
        let lines = text.lines().count() as u32 + 1;
        for item in &d.items {
            assert!(
                (1..=lines).contains(&item.span.line),
                "{}: {} points outside the file",
                file.display(),
                item.message
            );
        }
    }
}

#[test]
fn the_example_policies_are_valid() {
    for name in ["prod-east", "community"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name)
            .join("asdr.yaml");
        if let Err(e) = asdr_specs::load(&path) {
            panic!("{name}: {e}");
        }
    }
}
