//! The Channel RPC and the threads that serve channels (SPEC.md §9).
//!
//! Each channel gets one thread that answers requests from its window until the channel
//! is shut down or its peer breaks the protocol; a dead channel ends only its own thread.
//! When the connection's socket ends, every channel is shut down and its thread joined
//! before the connection's FDs are released.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use lisafs_protocol::transport::channel::{Channel, ChannelError, ChannelShutdown};
use lisafs_protocol::wire::{AnyResponse, Errno, Mid, PWriteHead, MAX_MESSAGE_SIZE};

use crate::backend::Backend;
use crate::connection::{Connection, Reply};

/// A running channel: how to stop it and the thread to join.
pub(crate) struct Running {
    stop: ChannelShutdown,
    thread: JoinHandle<()>,
}

impl<B: Backend> Connection<B> {
    /// Channel: creates a window and its thread, and donates `[memfd, fd socket]`.
    pub(crate) fn channel(&self) -> Reply {
        let me = self.me.upgrade().ok_or(Errno::ENOSYS)?;
        let mut channels = self.channels.lock();
        if self.closing.load(Ordering::Acquire) {
            return Err(Errno::ENOSYS);
        }
        if channels.len() >= self.server.options().max_channels {
            return Err(Errno::ENOMEM);
        }
        let new =
            Channel::create(MAX_MESSAGE_SIZE, self.server.options().spin).map_err(channel_errno)?;
        let stop = new.channel.shutdown_handle();
        // Counted here, not by the thread (which may not have run when the client has its
        // channel); the thread's end uncounts it.
        let metrics = self.server.metrics();
        if let Some(metrics) = metrics {
            metrics.channel_started();
        }
        let thread = std::thread::Builder::new()
            .name("lisafs-chan".into())
            .spawn(move || serve_channel(&me, new.channel))
            .map_err(|_| {
                if let Some(metrics) = metrics {
                    metrics.channel_ended();
                }
                Errno::EAGAIN
            })?;
        channels.push(Running { stop, thread });
        let [memfd, sock] = new.donate;
        Ok((
            AnyResponse::Channel(new.resp),
            vec![memfd.into(), sock.into()],
        ))
    }

    /// Shuts every channel down and waits for their threads; no new channel can start.
    pub(crate) fn stop_channels(&self) {
        let running = {
            let mut channels = self.channels.lock();
            self.closing.store(true, Ordering::Release);
            std::mem::take(&mut *channels)
        };
        for channel in &running {
            channel.stop.shutdown();
        }
        for channel in running {
            if channel.thread.join().is_err() {
                tracing::error!("a channel thread panicked");
            }
        }
    }
}

/// Serves one channel until it is shut down or broken.
fn serve_channel<B: Backend>(conn: &Connection<B>, mut channel: Channel) {
    let mut out = Vec::new();
    // A PWrite's data stays in the window: the kernel writes it to the file from there.
    let split = Some((Mid::PWrite.as_u16(), PWriteHead::SIZE));
    let result = channel.accept().and_then(|()| loop {
        let (frame, mut reply) = channel.next_request_split(split)?;
        let answer = conn.handle(frame.mid, frame.payload, &mut out, Some(&mut reply));
        let sent = match answer.in_place {
            Some(len) => reply.send_in_place(answer.mid, len),
            None => {
                let borrowed: Vec<_> = answer.fds.iter().map(AsFd::as_fd).collect();
                reply.send(answer.mid, &out, &borrowed)
            }
        };
        conn.sent(answer.pending);
        sent?;
    });
    match result {
        Err(ChannelError::Shutdown) => {}
        Err(err) => {
            tracing::warn!("channel closed: {err}");
            // Mark the window shut down and wake the peer: a client waiting for a
            // response on this channel gets an error instead of sleeping forever.
            channel.shutdown_handle().shutdown();
        }
        Ok(()) => {}
    }
    if let Some(metrics) = conn.server.metrics() {
        metrics.channel_ended();
    }
}

/// The errno a failed channel operation gives its caller.
pub(crate) fn channel_errno(err: ChannelError) -> Errno {
    match err {
        ChannelError::Io(errno) => errno.into(),
        _ => Errno::EIO,
    }
}
