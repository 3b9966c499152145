//! `loadgen emulator`: a Looker emulator for the runs of lookerctl, secret-tool and the
//! Python SDK that scripts/bench.sh starts itself.

use crate::Res;
use looker_emulator::{Emulator, EmulatorConfig, EmulatorUser};
use std::path::Path;

/// Serves one credential until SIGTERM or SIGINT; its URL is written to `url_file`.
pub fn run(url_file: &Path, client_id: &str, secret: &str) -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let emu = Emulator::start(EmulatorConfig::default()).await.map_err(|e| e.to_string())?;
        emu.add_credential(client_id, secret, EmulatorUser::new("42", "Bench User", "bench@example.com"));
        std::fs::write(url_file, emu.base_url()).map_err(|e| e.to_string())?;
        looker_agent::daemon::signals::terminate_signal().await;
        let c = emu.counters();
        eprintln!("loadgen emulator: {} login(s), {} logout(s)", c.logins, c.logouts);
        emu.shutdown().await;
        Ok(())
    })
}
