//! Messages of the control socket: JSON documents in [`crate::fdpass`]
//! frames. An application sends one [`ControlRequest`] per frame and gets
//! one [`ControlReply`] per frame back.
//!
//! `register` is answered with a [`RegisterReply`] inside the envelope and
//! `2 + contexts` fds, in this order: the region memfd, the DPU doorbell
//! eventfd (rung by the application when `dpu_sleeping` is set), then the
//! doorbell of context 0, 1, ..., N-1 (index [`REGISTER_FDS_BASE`] + i).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::abi;
use crate::fdpass;

/// A request from an application (or a tool) to the DPU service.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    /// `{"op":"register","name":"redis","pid":42,"contexts":4}`
    Register {
        name: String,
        pid: u32,
        contexts: u32,
    },
    /// `{"op":"stats"}`
    Stats,
    /// `{"op":"conns"}`
    Conns,
    /// `{"op":"capture","count":100,"filter":"tcp port 80"}`: after an ok
    /// reply the service streams frames, each `[0u8] + ns timestamp (u64
    /// LE) + Ethernet frame`, until `count` (0: until the client leaves),
    /// then one `[1u8] + JSON {"captured":N,"dropped":M}` frame.
    Capture {
        #[serde(default)]
        count: u64,
        #[serde(default)]
        filter: String,
    },
    /// `{"op":"fork"}`, on a registered connection, before `fork()`: the
    /// service reserves a context for the child and makes it a holder of
    /// every connection and listener this process holds, so that nothing
    /// closes under the child before it joins. Answered by a
    /// [`ForkReply`]; an unjoined ticket expires.
    Fork,
    /// `{"op":"join",...}`, from the child on a new connection: it becomes
    /// a member of the application with the ticket's context, and keeps
    /// of the parent's holdings only the connections (`conns`, handles)
    /// and listening ports (`ports`) it still has descriptors for.
    /// Answered like `register` (a [`RegisterReply`] whose
    /// `first_context` is the ticket's, one context), with 3 fds.
    Join {
        app_id: u32,
        token: u64,
        pid: u32,
        name: String,
        #[serde(default)]
        conns: Vec<u64>,
        #[serde(default)]
        ports: Vec<u16>,
    },
    /// `{"op":"bpf","cmd":"load","file":"/abs/fw.o","hook":"ingress"}`: an
    /// operator's command for the XDP-style hook ([`BpfCommand`]), answered
    /// with a JSON document.
    Bpf(BpfCommand),
    /// `{"op":"groups"}`: which owner holds each flow group, answered with
    /// `{"owners":N,"owners_per_replica":P,"owner_of":[...],"drained":[...]}`
    /// (`drained`: per replica, whether `drain_replica` took it out).
    Groups,
    /// `{"op":"move_group","group":5,"to":1}`: an operator moves flow
    /// group `group`, with its open connections, to owner `to` (of the
    /// same replica, or of another staged one where the port steers in
    /// software); answered once it has landed, with
    /// `{"group","from","to","connections","micros"}`.
    MoveGroup { group: u32, to: usize },
    /// `{"op":"drain_replica","replica":1}`: every flow group of the
    /// replica moves to the other replicas' owners; answered with
    /// `{"moved":[{"group","from","to","connections"}],"connections","micros"}`.
    DrainReplica { replica: usize },
    /// `{"op":"rebalance"}`: every flow group moves back to the owner the
    /// plan gave it; answered as `drain_replica`.
    Rebalance,
}

/// `flextoe-dpu bpf ...`: `cmd` is one of `load` (`file`, `hook`,
/// `section`), `list`, `unload` (`id`), `map_show`, `map_dump` (`map`),
/// `map_update` (`map`, `key`, `value`, `replica`), `map_delete` (`map`,
/// `key`, `replica`), `capture` (`count`: then a stream as for
/// [`ControlRequest::Capture`], of the frames programs pass to
/// `flextoe_capture`). Keys and values are hexadecimal bytes in memory
/// order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct BpfCommand {
    pub cmd: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hook: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub section: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub map: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// The reply to `fork`: what the child presents to `join`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkReply {
    pub token: u64,
    /// The context reserved for the child.
    pub context: u32,
}

/// Tag byte of a packet frame in a capture stream.
pub const CAPTURE_PACKET: u8 = 0;
/// Tag byte of the final frame of a capture stream.
pub const CAPTURE_END: u8 = 1;

/// The reply to `register`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RegisterReply {
    pub app_id: u32,
    pub abi_version: u32,
    pub layout: abi::Layout,
    pub local_ip: std::net::Ipv4Addr,
    /// The congestion control connections get unless the application
    /// chooses (`TCP_CONGESTION` name; older services: absent, "reno").
    #[serde(default = "default_cc_name")]
    pub congestion_control: String,
    /// Ports whose listeners use another one (`tcp.congestion_control_by_port`).
    #[serde(default)]
    pub congestion_control_by_port: std::collections::BTreeMap<u16, String>,
    /// The contexts this process may use are `first_context ..
    /// first_context + granted_contexts`; the layout's other contexts are
    /// reserved for processes forked from it (`fork`/`join`). Absent
    /// (older services): all of them.
    #[serde(default)]
    pub first_context: u32,
    #[serde(default)]
    pub granted_contexts: Option<u32>,
}

fn default_cc_name() -> String {
    "reno".into()
}

/// Envelope of every reply: `{"ok":true,"reply":...}` or
/// `{"ok":false,"error":"..."}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ControlReply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ControlReply {
    /// `{"ok":true,"reply":value}`.
    pub fn success<T: Serialize>(value: &T) -> Result<ControlReply, serde_json::Error> {
        Ok(ControlReply {
            ok: true,
            reply: Some(serde_json::to_value(value)?),
            error: None,
        })
    }

    /// `{"ok":false,"error":message}`.
    pub fn failure(message: impl Into<String>) -> ControlReply {
        ControlReply {
            ok: false,
            reply: None,
            error: Some(message.into()),
        }
    }

    /// The reply decoded as `T`, or the error message (also for a
    /// malformed envelope or reply).
    pub fn into_result<T: DeserializeOwned>(self) -> Result<T, String> {
        if !self.ok {
            return Err(self
                .error
                .unwrap_or_else(|| "request failed (no error message)".into()));
        }
        let v = self.reply.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(v).map_err(|e| format!("malformed reply: {e}"))
    }
}

/// Index of context 0's doorbell among the fds of a register reply (after
/// the region memfd and the DPU doorbell).
pub const REGISTER_FDS_BASE: usize = 2;
/// Index of the region memfd among the fds of a register reply.
pub const REGISTER_FD_REGION: usize = 0;
/// Index of the DPU doorbell among the fds of a register reply.
pub const REGISTER_FD_DPU_DOORBELL: usize = 1;

/// Sends `value` as one JSON frame with `fds` attached.
pub fn send_json<T: Serialize + ?Sized>(
    sock: &UnixStream,
    value: &T,
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let bytes =
        serde_json::to_vec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    fdpass::send_frame(sock, &bytes, fds)
}

/// Receives one JSON frame (see [`fdpass::recv_frame`]); a document that
/// does not parse as `T` is `InvalidData` with serde's message (its fds are
/// closed).
pub fn recv_json<T: DeserializeOwned>(
    sock: &UnixStream,
    max_fds: usize,
) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    let Some((bytes, fds)) = fdpass::recv_frame(sock, max_fds)? else {
        return Ok(None);
    };
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some((value, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Doorbell, Region};
    use serde_json::json;

    fn layout() -> abi::Layout {
        abi::Layout {
            contexts: 2,
            ring_entries: 64,
            slots: 4,
            rx_buf_size: 4096,
            tx_buf_size: 4096,
        }
    }

    #[test]
    fn request_wire_format() {
        let r = ControlRequest::Register {
            name: "redis".into(),
            pid: 42,
            contexts: 4,
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"op":"register","name":"redis","pid":42,"contexts":4})
        );
        assert_eq!(
            serde_json::from_str::<ControlRequest>(r#"{"op":"stats"}"#).unwrap(),
            ControlRequest::Stats
        );
        assert_eq!(
            serde_json::from_str::<ControlRequest>(r#"{"op":"conns"}"#).unwrap(),
            ControlRequest::Conns
        );
        assert!(serde_json::from_str::<ControlRequest>(r#"{"op":"nope"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<ControlRequest>(r#"{"op":"fork"}"#).unwrap(),
            ControlRequest::Fork
        );
        let join = ControlRequest::Join {
            app_id: 7,
            token: 1 << 63,
            pid: 43,
            name: "nginx".into(),
            conns: vec![5],
            ports: vec![80],
        };
        assert_eq!(
            serde_json::to_value(&join).unwrap(),
            json!({"op":"join","app_id":7,"token":1u64 << 63,"pid":43,"name":"nginx","conns":[5],"ports":[80]})
        );
        // What a child keeps may be omitted (nothing).
        let bare = r#"{"op":"join","app_id":7,"token":9,"pid":43,"name":"x"}"#;
        assert!(matches!(
            serde_json::from_str::<ControlRequest>(bare).unwrap(),
            ControlRequest::Join { conns, ports, .. } if conns.is_empty() && ports.is_empty()
        ));
    }

    #[test]
    fn reply_envelope() {
        let ok = ControlReply::success(&json!({"x":1})).unwrap();
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"ok":true,"reply":{"x":1}}"#
        );
        let err = ControlReply::failure("no");
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"ok":false,"error":"no"}"#
        );
        assert_eq!(err.into_result::<u32>(), Err("no".into()));
        let parsed: ControlReply = serde_json::from_str(r#"{"ok":true}"#).unwrap();
        assert_eq!(parsed.reply, None);
    }

    #[test]
    fn register_round_trip_with_fds() {
        let (app, dpu) = UnixStream::pair().unwrap();
        let req = ControlRequest::Register {
            name: "app".into(),
            pid: std::process::id(),
            contexts: 2,
        };
        send_json(&app, &req, &[]).unwrap();
        let (got, fds) = recv_json::<ControlRequest>(&dpu, 0).unwrap().unwrap();
        assert_eq!(got, req);
        assert!(fds.is_empty());

        let l = layout();
        let region = Region::create("app", l.region_size()).unwrap();
        region.write_header(&l).unwrap();
        let dpu_bell = Doorbell::new().unwrap();
        let ctx_bells = [Doorbell::new().unwrap(), Doorbell::new().unwrap()];
        let reply = RegisterReply {
            app_id: 7,
            abi_version: abi::ABI_VERSION,
            layout: l,
            local_ip: "198.18.0.2".parse().unwrap(),
            congestion_control: "reno".into(),
            congestion_control_by_port: Default::default(),
            first_context: 0,
            granted_contexts: None,
        };
        let env = ControlReply::success(&reply).unwrap();
        let fds = [
            region.fd(),
            dpu_bell.fd(),
            ctx_bells[0].fd(),
            ctx_bells[1].fd(),
        ];
        send_json(&dpu, &env, &fds).unwrap();

        let (env2, mut fds) = recv_json::<ControlReply>(&app, 2 + abi::MAX_CONTEXTS as usize)
            .unwrap()
            .unwrap();
        let reply2: RegisterReply = env2.into_result().unwrap();
        assert_eq!(reply2, reply);
        assert_eq!(fds.len(), REGISTER_FDS_BASE + 2);
        let ctx1 = Doorbell::from_fd(fds.pop().unwrap()).unwrap();
        let _ctx0 = fds.pop().unwrap();
        let dpu_bell2 = Doorbell::from_fd(fds.pop().unwrap()).unwrap();
        let region2 = Region::from_fd(fds.pop().unwrap()).unwrap();
        region2.check_header(&reply2.layout).unwrap();
        ctx1.ring().unwrap();
        assert_eq!(ctx_bells[1].drain().unwrap(), 1);
        dpu_bell2.ring().unwrap();
        assert_eq!(dpu_bell.drain().unwrap(), 1);
    }

    #[test]
    fn parse_errors_are_invalid_data() {
        let (a, b) = UnixStream::pair().unwrap();
        fdpass::send_frame(&a, b"{not json", &[]).unwrap();
        let e = recv_json::<ControlRequest>(&b, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        fdpass::send_frame(&a, br#"{"op":"register"}"#, &[]).unwrap();
        let e = recv_json::<ControlRequest>(&b, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("missing field"), "{e}");
        drop(a);
        assert!(recv_json::<ControlRequest>(&b, 0).unwrap().is_none());
    }
}
