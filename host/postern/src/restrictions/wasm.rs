//! `check_policy_service wasm:NAME`: a Wasm policy plugin bound in `plugins.toml`.
//!
//! The Postfix policy attributes ([`Facts`]) become the WIT `policy-request`; the plugin's
//! verdict becomes access(5) action texts — side effects first, then the decision — which run
//! through the same `check_table_result` logic as a policy server's `action=` reply, so a
//! plugin's `REJECT`, `PREPEND`, `DEFER_IF_PERMIT`, … behave exactly as a server's would.
//! A failed call (trap, timeout, memory cap, plugin error) applies the binding's `on_error`:
//! `dunno` continues with the next restriction, `defer` answers `451 4.3.0`.

use postern_config::Config;
use postern_proto::Reply;
use postern_runtime::{
    Action, ClientInfo, Decision as PluginDecision, OnError, PolicyRequest, Protocol, ServerInfo,
    Stage as PluginStage, TlsInfo, Verdict,
};

use super::eval::{server_error, Eval};
use super::{Decision, Facts};
use crate::plugins::{PluginSet, PolicyRef};

/// What the restriction list does with a plugin's answer.
pub enum Outcome {
    /// access(5) action texts, applied in order; the last one decides.
    Actions(Vec<String>),
    Decision(Decision),
}

pub async fn query(plugins: &PluginSet, name: &str, facts: &Facts, cfg: &Config) -> Outcome {
    let plugin = match plugins.policy(name) {
        PolicyRef::Ready(p) => p,
        PolicyRef::Broken(b) => {
            crate::warn!("smtpd", "plugin {name} is not loaded (see postern check)");
            return on_error(b.on_error);
        }
        PolicyRef::Unbound => {
            crate::warn!(
                "smtpd",
                "check_policy_service wasm:{name}: no policy plugin \"{name}\" in plugins.toml"
            );
            return Outcome::Decision(server_error());
        }
    };
    match plugin
        .check(&request(facts, cfg), facts.plugins.as_ref())
        .await
    {
        Ok(verdict) => Outcome::Actions(actions(verdict)),
        Err(e) => {
            crate::warn!("smtpd", "plugin {name}: {e}");
            on_error(plugin.binding().on_error)
        }
    }
}

fn on_error(policy: OnError) -> Outcome {
    match policy {
        OnError::Dunno => Outcome::Decision(Decision::Dunno),
        OnError::Defer => Outcome::Decision(Decision::Defer(Reply::new(
            451,
            "4.3.0",
            "Error: temporary plugin failure, try again later",
        ))),
    }
}

impl Eval<'_> {
    /// Applies a plugin's outcome as `check_table_result` applies a policy server's action.
    pub(super) async fn plugin_result(
        &mut self,
        outcome: &Outcome,
        name: &str,
        class: &'static str,
    ) -> Decision {
        match outcome {
            Outcome::Decision(d) => d.clone(),
            Outcome::Actions(actions) => {
                let mut decision = Decision::Dunno;
                for action in actions {
                    decision = self.table_result(action, name, class).await;
                }
                decision
            }
        }
    }
}

fn stage(command: &str) -> PluginStage {
    match command {
        "CONNECT" => PluginStage::Connect,
        "HELO" | "EHLO" => PluginStage::Helo,
        "MAIL" => PluginStage::Mail,
        "DATA" | "BDAT" => PluginStage::Data,
        "END-OF-MESSAGE" => PluginStage::EndOfData,
        "VRFY" => PluginStage::Vrfy,
        "ETRN" => PluginStage::Etrn,
        _ => PluginStage::Rcpt,
    }
}

fn known(name: &str) -> Option<String> {
    (name != "unknown" && !name.is_empty()).then(|| name.to_string())
}

/// The client as plugins see it (policy requests, filter contexts).
pub(crate) fn client_info(f: &Facts) -> ClientInfo {
    ClientInfo {
        address: f.client_addr,
        port: f.client_port,
        reverse_name: known(&f.reverse_client_name),
        verified_name: known(&f.client_name),
        helo: f.helo.clone(),
        protocol: if f.esmtp {
            Protocol::Esmtp
        } else {
            Protocol::Smtp
        },
        tls: f.tls.as_ref().map(tls_info),
        sasl_method: f.sasl_method.clone(),
        sasl_username: f.sasl_username.clone(),
    }
}

/// The session's TLS as plugins see it (no client certificates are asked for).
fn tls_info(t: &crate::tls::TlsSummary) -> TlsInfo {
    TlsInfo {
        version: t.protocol.clone(),
        cipher: t.cipher.clone(),
        cipher_bits: t.bits,
        sni: t.sni.clone(),
        peer_subject: None,
        peer_issuer: None,
        peer_fingerprint: None,
    }
}

fn request(f: &Facts, cfg: &Config) -> PolicyRequest {
    PolicyRequest {
        stage: stage(f.command),
        instance: f.instance.clone(),
        client: ClientInfo {
            address: f.client_addr,
            port: f.client_port,
            reverse_name: known(&f.reverse_client_name),
            verified_name: known(&f.client_name),
            helo: f.helo.clone(),
            protocol: if f.esmtp {
                Protocol::Esmtp
            } else {
                Protocol::Smtp
            },
            tls: f.tls.as_ref().map(tls_info),
            sasl_method: f.sasl_method.clone(),
            sasl_username: f.sasl_username.clone(),
        },
        // The listener address is not among the facts yet (Postfix sends it empty too).
        server: ServerInfo {
            address: std::net::Ipv4Addr::UNSPECIFIED.into(),
            port: 0,
            hostname: cfg.myhostname.clone(),
            service: "smtpd".into(),
        },
        queue_id: f.queue_id.clone(),
        sender: f.sender.clone(),
        recipient: f.recipient.clone(),
        recipient_count: u32::try_from(f.recipient_count).unwrap_or(u32::MAX),
        size: f.size,
        argument: None,
        context: None,
    }
}

/// One line of text a plugin gave: control characters (CR, LF) become spaces, so a plugin can
/// neither end the SMTP reply early nor add log lines.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn with_text(word: &str, text: &Option<String>) -> String {
    match text.as_deref().map(clean) {
        Some(t) if !t.is_empty() => format!("{word} {t}"),
        _ => word.to_string(),
    }
}

/// The verdict as access(5) action texts: side effects first, then the decision.
fn actions(v: Verdict) -> Vec<String> {
    let mut out: Vec<String> = v
        .actions
        .into_iter()
        .map(|a| match a {
            Action::Prepend { name, value } => {
                format!("PREPEND {}: {}", clean(&name), clean(&value))
            }
            Action::Hold(t) => with_text("HOLD", &t),
            Action::Redirect(a) => format!("REDIRECT {}", clean(&a)),
            Action::Filter(d) => format!("FILTER {}", clean(&d)),
            Action::Bcc(a) => format!("BCC {}", clean(&a)),
            Action::Warn(t) => format!("WARN {}", clean(&t)),
            Action::Info(t) => format!("INFO {}", clean(&t)),
        })
        .collect();
    let reply = |r: &postern_runtime::Reply, class: u16, word: &str| {
        let mut text = clean(&r.text.join(" "));
        if let Some(e) = r.enhanced {
            if u16::from(e.0) * 100 == class {
                text = format!("{}.{}.{} {text}", e.0, e.1, e.2);
            }
        }
        // A code of the wrong class is a plugin bug: keep the intent (reject vs defer) with
        // the configured default code instead of trusting the number.
        if r.code / 100 * 100 == class {
            format!("{} {text}", r.code)
        } else {
            format!("{word} {text}")
        }
    };
    out.push(match v.decision {
        PluginDecision::Ok => "OK".to_string(),
        PluginDecision::Dunno => "DUNNO".to_string(),
        PluginDecision::Reject(r) => reply(&r, 500, "REJECT"),
        PluginDecision::Defer(r) => reply(&r, 400, "DEFER"),
        PluginDecision::DeferIfReject(t) => with_text("DEFER_IF_REJECT", &t),
        PluginDecision::DeferIfPermit(t) => with_text("DEFER_IF_PERMIT", &t),
        PluginDecision::Discard(t) => with_text("DISCARD", &t),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_runtime::{EnhancedCode, Reply as PReply};

    #[test]
    fn verdicts_become_access_actions() {
        let v = Verdict {
            decision: PluginDecision::Reject(PReply {
                code: 550,
                enhanced: Some(EnhancedCode(5, 7, 1)),
                text: vec!["go\r\naway".into()],
            }),
            actions: vec![
                Action::Prepend {
                    name: "X-Checked".into(),
                    value: "yes".into(),
                },
                Action::Warn("odd".into()),
            ],
        };
        assert_eq!(
            actions(v),
            ["PREPEND X-Checked: yes", "WARN odd", "550 5.7.1 go  away"]
        );
        let v = Verdict {
            decision: PluginDecision::Defer(PReply {
                code: 550,
                enhanced: None,
                text: vec!["later".into()],
            }),
            actions: vec![],
        };
        assert_eq!(actions(v), ["DEFER later"]);
        let v = Verdict {
            decision: PluginDecision::DeferIfPermit(None),
            actions: vec![],
        };
        assert_eq!(actions(v), ["DEFER_IF_PERMIT"]);
    }
}
