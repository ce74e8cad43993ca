//! `lime demo` end to end, short: the binary runs both migrations on a lab of its own
//! (`tdemo`, namespaces `lime-tdemo-*`, which no other test uses) with os-ken's learning
//! switch, and its JSON lines must say what the demo promises: `clone` lost nothing by
//! the migration, duplicated and reordered nothing, every counter matches; `move` lost traffic in its
//! frozen copy; each run wrote its plot.
use std::process::Command;

#[test]
fn demo_json_reports_both_migrations() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: this test needs root (BPF, namespaces)");
        return;
    }
    let out_dir = std::env::temp_dir().join(format!("lime-tdemo-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_lime"))
        .args(["demo", "--json", "--lab", "tdemo", "--seconds", "1.5"])
        .args(["--rate", "400", "--out"])
        .arg(&out_dir)
        .output()
        .expect("running lime demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let plots: Vec<bool> = lines
        .iter()
        .map(|o| {
            o["plot"].as_str().is_some_and(|p| {
                std::fs::read_to_string(p).is_ok_and(|svg| svg.starts_with("<svg"))
            })
        })
        .collect();
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(lines.len(), 2, "one JSON object per migration: {stdout}");
    for (o, strategy) in lines.iter().zip(["clone", "move"]) {
        assert_eq!(o["strategy"], strategy, "{o}");
        for key in [
            "rules",
            "sent",
            "received",
            "lost",
            "duplicated",
            "reordered",
            "clone_ms",
            "total_ms",
            "counters_match",
        ] {
            assert!(!o[key].is_null(), "{key} missing in {o}");
        }
        let n = |k: &str| o[k].as_u64().unwrap_or_else(|| panic!("{k} in {o}"));
        assert!(n("sent") > 1000, "{o}");
        assert_eq!(n("received") + n("lost"), n("sent"), "{o}");
        assert_eq!(
            n("lost"),
            n("lost_by_migration")
                + n("lost_in_host_reattach")
                + n("lost_before_lime")
                + n("lost_while_frozen"),
            "every loss is put down to one cause: {o}"
        );
        assert!(n("rules") >= 13, "table-miss + 12 learned rules: {o}");
        assert_eq!(o["per_flow"].as_array().map(Vec::len), Some(12), "{o}");
        assert_eq!(o["counters_match"], true, "{o}");
        assert!(o["clone_ms"].as_f64().unwrap_or(0.0) > 0.0, "{o}");
        assert!(o["total_ms"].as_f64().unwrap_or(0.0) > 0.0, "{o}");
    }
    let (clone, mv) = (&lines[0], &lines[1]);
    assert_eq!(clone["lost_by_migration"], 0, "{clone}");
    assert_eq!(clone["duplicated"], 0, "{clone}");
    assert_eq!(clone["reordered"], 0, "{clone}");
    assert_eq!(clone["frozen_drops"], 0, "{clone}");
    assert!(mv["frozen_drops"].as_u64().unwrap_or(0) > 0, "{mv}");
    assert!(mv["lost_while_frozen"].as_u64().unwrap_or(0) > 0, "{mv}");
    assert_eq!(plots, [true, true], "each run wrote its SVG plot");
    assert!(
        stderr.contains("migration of vs1 to s3 (clone) starts"),
        "{stderr}"
    );
}
