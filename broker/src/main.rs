//! The `stompede` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use stompede::config::{Config, LogFormat};
use stompede::{Broker, DEFAULT_CONFIG_TOML};

/// `--version`: the version and the cargo features built in.
#[cfg(feature = "kafka")]
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (features: kafka; plugins: chat)"
);
/// `--version`: the version and the cargo features built in.
#[cfg(not(feature = "kafka"))]
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (features: none; plugins: chat)"
);

/// A fast, safe STOMP broker over TCP and WebSocket.
#[derive(Debug, Parser)]
#[command(name = "stompede", version = VERSION, about)]
struct Cli {
    /// TOML configuration file (see `stompede config default`).
    #[arg(long, short, env = "STOMPEDE_CONFIG")]
    config: Option<PathBuf>,
    /// STOMP-over-TCP listen address; "" disables the listener.
    #[arg(long, env = "STOMPEDE_TCP_LISTEN")]
    tcp_listen: Option<String>,
    /// STOMP-over-WebSocket listen address; "" disables the listener.
    #[arg(long, env = "STOMPEDE_WS_LISTEN")]
    ws_listen: Option<String>,
    /// Admin HTTP listen address (/metrics, /healthz, /readyz); "" disables it.
    #[arg(long, env = "STOMPEDE_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Serve this directory's files on the WebSocket listener's other paths
    /// (e.g. `examples/web-chat`, the example chat page).
    #[arg(long, env = "STOMPEDE_STATIC_DIR")]
    static_dir: Option<String>,
    /// Directory of the on-disk store (sled).
    #[arg(long, env = "STOMPEDE_DATA_DIR")]
    data_dir: Option<String>,
    /// Keep persistent messages in memory only (nothing survives a restart).
    #[arg(long, env = "STOMPEDE_MEMORY_STORE")]
    memory_store: bool,
    /// This node's id in a cluster (overrides `[cluster] node_id`; e.g. the
    /// pod name of a StatefulSet).
    #[arg(long, env = "STOMPEDE_NODE_ID")]
    node_id: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "STOMPEDE_LOG_FORMAT")]
    log_format: Option<String>,
    /// Log filter, e.g. `info` or `stompede=debug`.
    #[arg(long, env = "STOMPEDE_LOG")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Hash a password (argon2id) for the users file. Reads the password
    /// from the terminal, or one line from standard input when piped.
    Passwd {
        /// Print a whole `[[user]]` entry for this user name, ready to
        /// append to the users file.
        #[arg(long)]
        user: Option<String>,
        /// Roles for the `[[user]]` entry, comma-separated.
        #[arg(long, value_delimiter = ',', requires = "user")]
        roles: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the commented default configuration.
    Default,
    /// Check a configuration file and print the effective settings.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Config {
            action: ConfigAction::Default,
        }) => {
            print!("{DEFAULT_CONFIG_TOML}");
            return Ok(());
        }
        Some(Command::Config {
            action: ConfigAction::Check { file },
        }) => {
            let config = Config::from_file(file)?;
            println!("{config:#?}");
            return Ok(());
        }
        Some(Command::Passwd { user, roles }) => return passwd(user.as_deref(), roles),
        None => {}
    }
    let config = effective_config(&cli)?;
    init_logging(&config);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(async move {
            let mut builder = Broker::builder();
            if config.chat.enabled {
                builder = builder.plugin(stompede_chat::ChatPlugin::new(config.chat.clone()));
            }
            let handle = builder
                .config(config)
                .build()
                .start()
                .await
                .context("broker failed")?;
            reload_on_sighup_until(&cli, &handle, shutdown_signal()).await;
            handle.shutdown().await;
            Ok(())
        })
}

/// `stompede passwd`: prints the argon2id hash of a password.
fn passwd(user: Option<&str>, roles: &[String]) -> anyhow::Result<()> {
    let password = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        rpassword::prompt_password("Password: ").context("cannot read the password")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    let hash = stompede::security::users::hash_password(&password)?;
    match user {
        None => println!("{hash}"),
        Some(name) => {
            let entry = UserEntry {
                user: vec![UserLine {
                    name,
                    password: &hash,
                    roles,
                }],
            };
            print!("{}", toml::to_string(&entry)?);
        }
    }
    Ok(())
}

/// A users-file entry as `stompede passwd --user` prints it.
#[derive(serde::Serialize)]
struct UserEntry<'a> {
    user: Vec<UserLine<'a>>,
}

#[derive(serde::Serialize)]
struct UserLine<'a> {
    name: &'a str,
    password: &'a str,
    roles: &'a [String],
}

/// Serves until `shutdown` completes; each SIGHUP re-reads the
/// configuration and applies its reloadable parts (a bad one is logged and
/// the running configuration stays).
async fn reload_on_sighup_until(
    cli: &Cli,
    handle: &stompede::BrokerHandle,
    shutdown: impl std::future::Future<Output = ()>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            shutdown.await;
            return;
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = hangups.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let outcome = effective_config(cli)
                        .map_err(|e| format!("{e:#}"))
                        .and_then(|config| handle.reload(&config));
                    if let Err(why) = outcome {
                        tracing::error!("configuration reload rejected, the running configuration stays: {why}");
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    shutdown.await;
}

/// The config file (if any) with command-line and environment overrides.
fn effective_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(addr) = &cli.tcp_listen {
        config.listeners.tcp = addr.clone();
    }
    if let Some(addr) = &cli.ws_listen {
        config.listeners.websocket = addr.clone();
    }
    if let Some(addr) = &cli.admin_listen {
        config.listeners.admin = addr.clone();
    }
    if let Some(dir) = &cli.static_dir {
        config.websocket.static_dir = dir.clone();
    }
    if let Some(dir) = &cli.data_dir {
        config.store.path = dir.clone();
    }
    if let Some(id) = &cli.node_id {
        config.cluster.node_id = id.clone();
    }
    if cli.memory_store {
        config.store.kind = stompede::config::StoreKind::Memory;
    }
    if let Some(format) = &cli.log_format {
        config.log.format = match format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => anyhow::bail!("unknown log format '{other}' (text or json)"),
        };
    }
    if let Some(level) = &cli.log_level {
        config.log.level = level.clone();
    }
    Ok(config)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
