//! Side effects that restrictions (access(5) actions, policy services) and content checks
//! (header_checks/body_checks) ask of a message. They never stop evaluation by themselves: smtpd
//! and the checks record them here, and cleanup carries them out when it queues the message.

/// What to do to the message besides queueing it (Postfix access(5) / header_checks(5) actions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// `PREPEND text`: header lines (`Name: value`, no line ending) added before the others.
    pub prepend: Vec<String>,
    /// `HOLD [text]`: queue into `hold/` instead of `incoming/`; the reason is logged.
    pub hold: Option<String>,
    /// `DISCARD [text]`: claim success and drop the message; the reason is logged.
    pub discard: Option<String>,
    /// `REDIRECT addr`: replace every recipient with this one (the last REDIRECT wins).
    pub redirect: Option<String>,
    /// `BCC addr`: add these recipients.
    pub bcc: Vec<String>,
    /// `FILTER transport:destination`: route the whole message there after queueing (the
    /// last FILTER wins), as Postfix's content_filter.
    pub filter: Option<String>,
}

impl Actions {
    /// Adds `other`'s actions after these (later REDIRECT/FILTER/HOLD/DISCARD texts win).
    pub fn merge(&mut self, other: Actions) {
        self.prepend.extend(other.prepend);
        self.bcc.extend(other.bcc);
        if other.hold.is_some() {
            self.hold = other.hold;
        }
        if other.discard.is_some() {
            self.discard = other.discard;
        }
        if other.redirect.is_some() {
            self.redirect = other.redirect;
        }
        if other.filter.is_some() {
            self.filter = other.filter;
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Actions::default()
    }
}
