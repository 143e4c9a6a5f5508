use clap::{Parser, Subcommand};

#[cfg(feature = "server")]
mod agent;
#[cfg(feature = "server")]
mod node_args;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod store;

/// gantry: a Kubernetes-compatible control plane, with a deterministic simulator (gantry-sim)
/// that runs the same components.
#[derive(Parser, Debug)]
#[command(name = "gantry", version, about, long_about = None)]
pub struct Cli {
    /// Log verbosity, as Kubernetes' -v: 0 operator-visible, 2 steady state, 4 debug, 5+ trace.
    /// RUST_LOG overrides it.
    #[arg(short = 'v', long = "v", global = true, default_value_t = 2)]
    pub verbosity: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the Kubernetes API (embedded store in a data directory by default, or etcd) and
    /// write a kubeconfig for kubectl into the data directory.
    #[cfg(feature = "server")]
    Server(server::ServerArgs),
    /// Run a node agent (kubelet) that joins a gantry server over HTTP and runs the pods bound
    /// to its node.
    #[cfg(feature = "server")]
    Agent(agent::AgentArgs),
    /// Read and write the versioned store directly, like etcdctl (embedded data directory by
    /// default, or etcd with --etcd).
    #[cfg(feature = "server")]
    Store(store::StoreArgs),
    /// The process runtime's per-container supervisor (started by node agents, not by hand;
    /// the `gantry-shim` binary is the same, smaller and faster to start).
    #[cfg(feature = "server")]
    #[command(hide = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print the version.
    Version,
}

pub fn init_logging(verbosity: u8) {
    #[cfg(feature = "server")]
    {
        use tracing_subscriber::EnvFilter;
        // glog levels onto tracing: up to -v=2 is info, 3-4 debug, 5 and above trace.
        let level = match verbosity {
            0..=2 => "info",
            // rustls logs every handshake at debug: only from -v=5.
            3..=4 => "debug,rustls=info",
            _ => "trace",
        };
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init();
    }
    #[cfg(not(feature = "server"))]
    let _ = verbosity;
}

pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        #[cfg(feature = "server")]
        Command::Server(args) => server::run(args),
        #[cfg(feature = "server")]
        Command::Agent(args) => agent::run(args),
        #[cfg(feature = "server")]
        Command::Store(args) => store::run(args),
        #[cfg(feature = "server")]
        Command::Shim { args } => {
            let args = gantry::kubelet::runtime::shim::ShimArgs::parse(args)?;
            std::process::exit(gantry::kubelet::runtime::shim::run(args))
        }
        Command::Version => {
            println!("gantry {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
