//! `flextoe-dpu`: the FlexTOE-rs service binary.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 configuration or usage error.

mod bpf;
mod cli;
mod common;
#[cfg(feature = "dpdk")]
mod dpdk_service;
mod loopback_service;
mod ops;
mod sim_service;

use clap::Parser;
use cli::{Cli, Command};
use doca_bindings::control::ControlRequest;
use pipeline_config::Config;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Stat {
            control,
            interval,
            count,
            json,
        } => report(ops::stat(&control.path(), interval, count, json)),
        Command::Conns { control, json } => report(ops::conns(&control.path(), json)),
        Command::Groups { control, json } => report(ops::groups(&control.path(), json)),
        Command::MoveGroup { control, group, to } => {
            report(ops::move_group(&control.path(), group, to))
        }
        Command::DrainReplica { control, replica } => report(ops::resize(
            &control.path(),
            &ControlRequest::DrainReplica { replica },
            &format!("replica {replica} drained"),
        )),
        Command::Rebalance { control } => report(ops::resize(
            &control.path(),
            &ControlRequest::Rebalance,
            "flow groups back where the plan put them",
        )),
        Command::Capture {
            control,
            count,
            write,
            filter,
        } => report(ops::capture(
            &control.path(),
            count.unwrap_or(0),
            write.as_deref(),
            &filter.join(" "),
        )),
        Command::Bpf { control, command } => report(bpf::run(&control.path(), command)),
        Command::DefaultConfig => {
            print!("{}", Config::default().to_json_pretty());
            ExitCode::SUCCESS
        }
        Command::CheckConfig { file } => match Config::from_file(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{}: {} problem(s):", file.display(), errors.0.len());
                eprintln!("{errors}");
                ExitCode::from(2)
            }
        },
        Command::Run(args) => {
            let mut config = match &args.config {
                Some(path) => match Config::from_file(path) {
                    Ok(c) => c,
                    Err(errors) => {
                        eprintln!("{}: {} problem(s):", path.display(), errors.0.len());
                        eprintln!("{errors}");
                        return ExitCode::from(2);
                    }
                },
                None => Config::default(),
            };
            if let Some(path) = &args.control {
                config.host.control_socket = path.display().to_string();
            }
            init_logging(&config);
            let backend = match args.backend.as_deref() {
                Some("sim") => pipeline_config::Backend::Sim,
                Some("loopback") => pipeline_config::Backend::Loopback,
                Some(_) => pipeline_config::Backend::Dpdk,
                None => config.port.backend,
            };
            // The DPDK service chooses once it knows its port's queues.
            if backend != pipeline_config::Backend::Dpdk {
                common::choose_placement(&mut config, 64);
            }
            let result = match backend {
                pipeline_config::Backend::Sim => sim_service::run(&config, &args),
                pipeline_config::Backend::Loopback => loopback_service::run(&config, &args),
                #[cfg(feature = "dpdk")]
                pipeline_config::Backend::Dpdk => dpdk_service::run(&config, &args),
                #[cfg(not(feature = "dpdk"))]
                pipeline_config::Backend::Dpdk => {
                    eprintln!(
                        "flextoe-dpu: port.backend \"dpdk\": this build has no DPDK support \
                         (built without the `dpdk` feature); use --backend sim"
                    );
                    return ExitCode::from(2);
                }
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("flextoe-dpu: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flextoe-dpu: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let level = format!("{:?}", config.logging.level).to_lowercase();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.logging.format {
        pipeline_config::LogFormat::Json => builder.json().try_init(),
        pipeline_config::LogFormat::Text => builder.try_init(),
    };
}
