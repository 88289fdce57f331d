//! The edge's TLS, judged by sslyze (PyPI, pinned) against Mozilla's
//! "intermediate" profile. Trust in the local edge CA is given to sslyze
//! (`--certinfo_ca_file`), so every other finding fails the test: TLS
//! versions, cipher suites, curves, the certificate's key, signature and
//! lifetime (at most 366 days), and the known vulnerabilities.

use std::process::Command;

use interlock_e2e::{target, tool};

#[test]
fn edge_tls_complies_with_mozilla_intermediate_per_sslyze() {
    let target = target();
    let m = target.local();
    // SNI and the certificate check use the name; the edge listens on IPv4.
    let target = format!("localhost:{}{{127.0.0.1}}", m.topology.edge.port);
    let out = Command::new(tool("sslyze"))
        .arg("--mozilla_config=intermediate")
        .arg("--certinfo_ca_file")
        .arg(m.run_dir.join("edge-ca.pem"))
        .arg(&target)
        .output()
        .expect("run sslyze (scripts/install-tools.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "sslyze: the edge is not compliant\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Mozilla's \"intermediate\" configuration")
            && text.contains(": OK - Compliant."),
        "{text}"
    );
}
