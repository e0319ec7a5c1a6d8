//! The JSON Schema and `curfew policy check` agree (issue 18).
//!
//! The same files go to `curfew policy check`, to ajv in strict mode
//! (`policy/schema/check/validate.mjs`, pinned in its package-lock.json) and
//! to check-jsonschema (pinned in `policy/schema/check/requirements.txt`):
//!
//! - `policy/tests/schema-cases/valid/` and `examples/*.yaml`: all three accept;
//! - `policy/tests/schema-cases/invalid/`: all three refuse;
//! - `policy/tests/schema-cases/beyond-schema/`: curfew refuses, both schema
//!   validators accept, because the rule is one JSON Schema cannot state
//!   (string bounds, cross-field rules, unique names). A case moves to
//!   `invalid/` when the schema learns to express it.
//!
//! Needs node and python3; the pinned validators are installed by
//! `policy/schema/check/install` (scripts/setup runs it, and so does this
//! test when they are missing, e.g. in a fresh worktree). check-jsonschema
//! may also come from `$CURFEW_CHECK_JSONSCHEMA`. A missing tool is a
//! failure, not a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs `policy/schema/check/install` once per test process.
fn ensure_validators() {
    static DONE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        let out = Command::new("bash")
            .arg(root().join("policy/schema/check/install"))
            .output()
            .expect("run policy/schema/check/install");
        assert!(
            out.status.success(),
            "installing the schema validators failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        *done = true;
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no cases in {}", dir.display());
    v
}

/// `curfew policy check FILE` exit status: true for valid.
fn curfew_accepts(file: &Path) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(["policy", "check"])
        .arg(file)
        .env_remove("CURFEW_POLICY")
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!(
            "curfew policy check {}: exit {other:?}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The verdicts of ajv (strict) on each file, converted from YAML to JSON.
fn ajv_verdicts(files: &[PathBuf]) -> Vec<(bool, String)> {
    ensure_validators();
    let check = root().join("policy/schema/check");
    assert!(
        check.join("node_modules/ajv").is_dir(),
        "ajv is not installed: run scripts/setup (npm ci --prefix policy/schema/check)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut json_files = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f).unwrap();
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        // Through YAML's own value type: an integer beyond 64 bits becomes a
        // float, as any YAML-to-JSON editor plugin would hand it over.
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
            .unwrap_or_else(|e| panic!("{}: not YAML a schema can judge: {e}", f.display()));
        let value = serde_json::to_value(yaml).unwrap();
        let path = tmp.path().join(format!("{i}.json"));
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        json_files.push(path);
    }
    let out = Command::new("node")
        .arg(check.join("validate.mjs"))
        .arg(root().join("policy/schema/policy.schema.json"))
        .args(&json_files)
        .output()
        .expect("node is not installed: run scripts/setup");
    assert!(
        out.status.success(),
        "ajv strict refused the schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), files.len());
    lines
        .iter()
        .map(|l| (l["valid"].as_bool().unwrap(), l["errors"].to_string()))
        .collect()
}

fn check_jsonschema() -> PathBuf {
    ensure_validators();
    if let Some(p) = std::env::var_os("CURFEW_CHECK_JSONSCHEMA") {
        return p.into();
    }
    let venv = root().join("target/schema-venv/bin/check-jsonschema");
    if venv.exists() {
        return venv;
    }
    "check-jsonschema".into()
}

/// The files check-jsonschema refuses (it reads the YAML itself, BOM and CRLF included).
fn check_jsonschema_refusals(files: &[PathBuf]) -> Vec<String> {
    let out = Command::new(check_jsonschema())
        .args(["--output-format", "JSON", "--schemafile"])
        .arg(root().join("policy/schema/policy.schema.json"))
        .args(files)
        .output()
        .expect("check-jsonschema is not installed: run scripts/setup");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check-jsonschema: unreadable report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        report["parse_errors"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    let mut refused: Vec<String> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["filename"].as_str().unwrap().to_owned())
        .collect();
    refused.dedup();
    refused
}

struct Case {
    file: PathBuf,
    /// What `curfew policy check` must say.
    curfew_valid: bool,
    /// What the schema validators must say.
    schema_valid: bool,
}

fn cases() -> Vec<Case> {
    let dir = root().join("policy/tests/schema-cases");
    let mut cases = Vec::new();
    let mut add = |files: Vec<PathBuf>, curfew_valid, schema_valid| {
        for file in files {
            cases.push(Case {
                file,
                curfew_valid,
                schema_valid,
            });
        }
    };
    add(yaml_files(&dir.join("valid")), true, true);
    add(yaml_files(&root().join("examples")), true, true);
    add(yaml_files(&dir.join("invalid")), false, false);
    add(yaml_files(&dir.join("beyond-schema")), false, true);
    cases
}

#[test]
fn curfew_ajv_strict_and_check_jsonschema_agree() {
    let cases = cases();
    let files: Vec<PathBuf> = cases.iter().map(|c| c.file.clone()).collect();
    let ajv = ajv_verdicts(&files);
    let cjs_refused = check_jsonschema_refusals(&files);
    let mut wrong = Vec::new();
    for (case, (ajv_valid, ajv_errors)) in cases.iter().zip(ajv) {
        let name = case.file.display().to_string();
        let curfew = curfew_accepts(&case.file);
        let cjs_valid = !cjs_refused.iter().any(|r| Path::new(r) == case.file);
        if curfew != case.curfew_valid {
            wrong.push(format!("{name}: curfew policy check says valid={curfew}"));
        }
        if ajv_valid != case.schema_valid {
            wrong.push(format!("{name}: ajv says valid={ajv_valid} {ajv_errors}"));
        }
        if cjs_valid != case.schema_valid {
            wrong.push(format!("{name}: check-jsonschema says valid={cjs_valid}"));
        }
    }
    assert!(wrong.is_empty(), "disagreements:\n{}", wrong.join("\n"));
}

#[test]
fn schema_served_by_the_cli_is_the_checked_in_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_curfew"))
        .args(["policy", "schema"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let on_disk = std::fs::read(root().join("policy/schema/policy.schema.json")).unwrap();
    assert_eq!(out.stdout, on_disk);
}

#[test]
fn check_jsonschema_accepts_the_schema_against_its_metaschema() {
    let out = Command::new(check_jsonschema())
        .arg("--check-metaschema")
        .arg(root().join("policy/schema/policy.schema.json"))
        .output()
        .expect("check-jsonschema is not installed: run scripts/setup");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 18: `curfew` linked oxide-auth and its crates though only the
/// `issuer` feature of curfew-oidc (not built for the CLI) uses them.
#[test]
fn curfew_binary_does_not_depend_on_oxide_auth() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "-p",
            "curfew-cli",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("curfew-oidc"), "{tree}");
    assert!(!tree.contains("oxide-auth"), "{tree}");
}
