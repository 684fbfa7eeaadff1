//! `strand-gui`: the desktop app.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use slint::ComponentHandle;
use strand_node::args::TransportArgs;

/// Strand's desktop app: your conversations, synced directly with your
/// contacts.
#[derive(Parser, Debug)]
#[command(name = "strand-gui", version, about)]
struct Cli {
    /// Profile directory [default: the platform's data directory, as for `strand`]
    #[arg(long, env = "STRAND_PROFILE")]
    profile: Option<PathBuf>,
    #[command(flatten)]
    transports: TransportArgs,
    /// Start with the dark palette
    #[arg(long)]
    dark: bool,
    /// Write this program's man page into DIR and exit (packaging)
    #[arg(long, value_name = "DIR", hide = true)]
    write_manual: Option<PathBuf>,
}

fn main() -> ExitCode {
    strand_node::runtime::panics::install();
    let cli = Cli::parse();
    if let Some(dir) = &cli.write_manual {
        use clap::CommandFactory;
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), dir));
        return match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("strand-gui: writing the man page in {}: {e}", dir.display());
                ExitCode::from(2)
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRAND_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let Some(profile) = cli.profile.or_else(strand_node::default_profile_dir) else {
        eprintln!("strand-gui: no data directory on this system; pass --profile DIR");
        return ExitCode::from(1);
    };
    let options = strand_gui::Options {
        profile,
        // Read once, here: `STRAND_DOWNLOADS` if set, else the user's
        // downloads folder.
        downloads: strand_node::downloads_dir(),
        node: cli.transports.node_config(),
        kdf: None,
        dark: cli.dark,
        notify: strand_gui::Notify::Session,
    };
    let ui = match strand_gui::AppWindow::new() {
        Ok(ui) => ui,
        Err(e) => {
            eprintln!("strand-gui: cannot open a window: {e}");
            return ExitCode::from(2);
        }
    };
    let app = strand_gui::init(&ui, options);
    // Until quit, not until the window closes: with "keep syncing when the
    // window is closed" on, closing only hides it.
    let result = ui.show().and_then(|()| slint::run_event_loop_until_quit());
    drop(app);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strand-gui: {e}");
            ExitCode::from(2)
        }
    }
}
