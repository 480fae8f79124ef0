//! The gofer as a service: where its connections come from ([`listener`]: `--socket`,
//! `--fd`, systemd socket activation), telling systemd it is ready ([`systemd`]), and
//! serving until told to stop ([`serve`]), and reloading on SIGHUP ([`reload`]).

pub(crate) mod listener;
pub(crate) mod reload;
pub(crate) mod serve;
pub(crate) mod systemd;

pub(crate) use listener::{SocketFile, Source};
pub(crate) use systemd::Notifier;
