//! `sluice check`: validate manifests exactly as `run` would load them.

use std::process::ExitCode;

use crate::cli::SourceArgs;
use crate::pipeline::Pipeline;

/// Entry point of `sluice check`: prints what each Ingress's annotations amount to and every
/// diagnostic, and exits 1 if any is an error (warnings alone exit 0).
pub fn main(source: &SourceArgs) -> ExitCode {
    // The runtime outlives the check: the watches it runs keep the store current.
    let (_runtime, kube) = match source.kubernetes {
        true => match check_cluster(source) {
            Ok((runtime, kube)) => (Some(runtime), Some(kube)),
            Err(e) => {
                eprintln!("sluice check: {e}");
                return ExitCode::from(2);
            }
        },
        false => (None, None),
    };
    let pipeline = match Pipeline::new(source, None, kube, None) {
        Ok(pipeline) => pipeline,
        Err(e) => {
            eprintln!("sluice check: {e}");
            return ExitCode::from(2);
        }
    };
    let snapshot = pipeline.first();

    print!("{}", pipeline.annotation_report());
    for diagnostic in &snapshot.diagnostics {
        println!("{diagnostic}");
    }
    let s = snapshot.summary;
    let errors = snapshot.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = snapshot.diagnostics.len() - errors;
    let verdict = if errors == 0 { "ok" } else { "problems found" };
    let gateway_api = gateway_summary(&snapshot);
    println!(
        "{verdict}: {} Ingresses ({} rejected), {} routes, {} certificates{gateway_api}, {errors} errors, {warnings} warnings",
        s.ingresses, s.rejected_ingresses, s.routes, s.certificates,
    );
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `, N Gateways (M accepted), K Gateway API routes (J accepted)` when there are any.
fn gateway_summary(snapshot: &sluice_config::Snapshot) -> String {
    use sluice_config::{ConditionStatus, GatewayApiStatus};
    let accepted = |conditions: &[sluice_config::StatusCondition]| {
        conditions.iter().any(|c| c.kind == "Accepted" && c.status == ConditionStatus::True)
    };
    let (mut gateways, mut gateways_ok, mut routes, mut routes_ok) = (0, 0, 0, 0);
    for status in snapshot.gateway_status.iter() {
        match &status.status {
            GatewayApiStatus::Gateway { conditions, .. } => {
                gateways += 1;
                gateways_ok += usize::from(accepted(conditions));
            }
            GatewayApiStatus::Route { parents } => {
                routes += 1;
                routes_ok += usize::from(parents.iter().any(|p| accepted(&p.conditions)));
            }
            GatewayApiStatus::GatewayClass { .. } | GatewayApiStatus::Policy { .. } => {}
        }
    }
    if gateways + routes == 0 {
        return String::new();
    }
    format!(", {gateways} Gateways ({gateways_ok} accepted), {routes} Gateway API routes ({routes_ok} accepted)")
}

/// Lists everything from the Kubernetes API once, for `check --kubernetes`.
fn check_cluster(
    source: &SourceArgs,
) -> Result<(tokio::runtime::Runtime, std::sync::Arc<sluice_kube::KubeSource>), String> {
    let runtime = crate::run::runtime(None)?;
    let kube = runtime.block_on(crate::run::Cluster::source_only(source))?;
    Ok((runtime, kube))
}
