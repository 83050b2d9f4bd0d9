//! Validation of a whole [`Config`]: every problem is reported at once.

mod host;
mod identity;
mod port;
mod report;
mod tcp;
mod topology;
mod xdp;

use crate::{Config, ConfigErrors, CpuSet};
use report::Report;

impl Config {
    /// Checks every field and every cross-field rule (address in subnet,
    /// topology feasible, `tcp.mss` fits `port.mtu`, `topology.cores` exist
    /// on this machine, ...). Returns all problems, in document order.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut report = Report::default();
        identity::check(&self.identity, &mut report);
        let mtu = port::check(&self.port, &mut report);
        topology::check(&self.topology, &CpuSet::online(), &mut report);
        tcp::check(&self.tcp, mtu, &mut report);
        host::check_host(&self.host, &mut report);
        host::check_metrics(&self.metrics, &mut report);
        xdp::check(&self.xdp, &mut report);
        report.finish()
    }
}
