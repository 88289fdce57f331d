//! The logs the supervisor writes for each process of the mesh
//! (`<run dir>/logs/<process>.log`, root-only), read from a mark on so a
//! test sees only what happened after it started looking.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use interlock_mesh::Mesh;

/// One process's log.
pub struct ProcessLog {
    path: PathBuf,
}

impl ProcessLog {
    /// The log of `process` (a name in the supervisor's configuration,
    /// e.g. `spire-agent`).
    pub fn of(mesh: &Mesh, process: &str) -> Self {
        Self {
            path: mesh.run_dir.join("logs").join(format!("{process}.log")),
        }
    }

    /// Where the log ends now.
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.path)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()))
            .len()
    }

    /// What was written after `mark`.
    pub fn since(&self, mark: u64) -> String {
        let mut file = std::fs::File::open(&self.path)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
        file.seek(SeekFrom::Start(mark)).expect("seek");
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).expect("read log");
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
