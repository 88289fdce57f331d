//! Pinned tool versions (`mesh/versions.toml`) and the container images
//! they name. The same file is read by `scripts/lib.sh`; the tests below
//! check that the files which must carry a version of their own (the Go tool
//! modules, the Dockerfile's defaults) agree with it.

use serde::Deserialize;

/// The repository's pinned versions.
pub const EMBEDDED: &str = include_str!("../../../mesh/versions.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Versions {
    pub envoy: String,
    pub spire: String,
    pub grpcurl: String,
    pub process_compose: String,
    pub jaeger: String,
    pub jaeger_module: String,
    /// `docker compose` v2 (tools/compose, built by scripts/docker.sh).
    pub compose: String,
    pub otel_collector: String,
    pub postgres: String,
    pub rust_image: String,
    pub runtime_image: String,
}

impl Versions {
    pub fn embedded() -> Self {
        toml::from_str(EMBEDDED).expect("the embedded versions are checked by tests")
    }

    /// PostgreSQL's major version (Debian's `postgresql-<major>`).
    pub fn postgres_major(&self) -> &str {
        self.postgres.split('.').next().unwrap_or(&self.postgres)
    }

    pub fn envoy_image(&self) -> String {
        format!("envoyproxy/envoy:v{}", self.envoy)
    }

    pub fn spire_server_image(&self) -> String {
        format!("ghcr.io/spiffe/spire-server:{}", self.spire)
    }

    pub fn spire_agent_image(&self) -> String {
        format!("ghcr.io/spiffe/spire-agent:{}", self.spire)
    }

    pub fn postgres_image(&self) -> String {
        format!("postgres:{}-bookworm", self.postgres)
    }

    pub fn collector_image(&self) -> String {
        format!(
            "otel/opentelemetry-collector-contrib:{}",
            self.otel_collector
        )
    }

    pub fn jaeger_image(&self) -> String {
        format!("jaegertracing/jaeger:{}", self.jaeger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn read(path: &str) -> String {
        std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// scripts/lib.sh reads the same versions the generator embeds.
    #[test]
    fn lib_sh_reads_the_pinned_versions() {
        let v = Versions::embedded();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg("source scripts/lib.sh && echo \"$ENVOY_VERSION $SPIRE_VERSION $GRPCURL_VERSION $POSTGRES_MAJOR\"")
            .current_dir(repo())
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!(
                "{} v{} v{} {}",
                v.envoy,
                v.spire,
                v.grpcurl,
                v.postgres_major()
            )
        );
    }

    /// The Go tool modules build the pinned versions.
    #[test]
    fn tool_modules_pin_the_same_versions() {
        let v = Versions::embedded();
        for (gomod, module, version) in [
            ("tools/spire/go.mod", "github.com/spiffe/spire", &v.spire),
            (
                "tools/process-compose/go.mod",
                "github.com/f1bonacc1/process-compose",
                &v.process_compose,
            ),
            (
                "tools/jaeger/go.mod",
                "github.com/jaegertracing/jaeger",
                &v.jaeger_module,
            ),
            (
                "tools/compose/go.mod",
                "github.com/docker/compose/v2",
                &v.compose,
            ),
        ] {
            let required = format!("\t{module} v{version}");
            assert!(
                read(gomod)
                    .lines()
                    .any(|l| l.split(" //").next() == Some(required.as_str())),
                "{gomod} does not require {module} v{version}"
            );
        }
    }

    /// The Dockerfile's base images default to the pinned ones.
    #[test]
    fn dockerfile_defaults_are_the_pinned_images() {
        let v = Versions::embedded();
        let dockerfile = read("Dockerfile");
        for (arg, image) in [
            ("RUST_IMAGE", v.rust_image.clone()),
            ("RUNTIME_IMAGE", v.runtime_image.clone()),
            ("SPIRE_SERVER_IMAGE", v.spire_server_image()),
        ] {
            assert!(
                dockerfile.contains(&format!("\nARG {arg}={image}\n")),
                "Dockerfile: ARG {arg} is not {image}"
            );
        }
    }
}
