//! OpenAt, OpenCreateAt, Close, FSync (SPEC.md §6.7–6.10, §7.2).

use std::sync::Arc;

use lisafs_protocol::wire::{
    AnyResponse, CloseReq, CloseResp, Errno, FSyncReq, FSyncResp, OpenAtReq, OpenAtResp,
    OpenCreateAtReq, OpenCreateAtResp,
};

use crate::backend::{Backend, OpenFlags, Opened};
use crate::connection::{Connection, Reply};
use crate::fd_table::{ControlFd, FdEntry, OpenFd};
use crate::handlers::{create_attrs, name};

const O_ACCMODE: u32 = 0o3;
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_TRUNC: u32 = 0o1000;

/// Keeps only the access mode and `O_TRUNC`, as lisafs servers do; access mode 3 is not
/// an access mode and is refused.
fn mask_flags(flags: u32) -> Result<OpenFlags, Errno> {
    let (read, write) = match flags & O_ACCMODE {
        0 => (true, false),
        O_WRONLY => (false, true),
        O_RDWR => (true, true),
        _ => return Err(Errno::EINVAL),
    };
    Ok(OpenFlags {
        read,
        write,
        truncate: flags & O_TRUNC != 0,
    })
}

/// Whether OpenAt with these flags would modify the file (refused when read-only).
pub(crate) fn wants_write(flags: u32) -> bool {
    flags & O_ACCMODE != 0 || flags & O_TRUNC != 0
}

impl<B: Backend> Connection<B> {
    pub(crate) fn open_at(&self, req: OpenAtReq) -> Reply {
        let control = self.control(req.fd)?;
        let flags = mask_flags(req.flags)?;
        if control.is_symlink() {
            return Err(Errno::EINVAL);
        }
        if control.is_dir() && (flags.write || flags.truncate) {
            return Err(Errno::EISDIR);
        }
        self.fds.lock().ensure_room(1)?;
        let opened = {
            let _node = control.node.lock.read();
            self.server.backend().open(&control.file, flags)?
        };
        let open_fd = self.register_open(control, opened.open, flags)?;
        let resp = AnyResponse::OpenAt(OpenAtResp { open_fd });
        Ok((resp, opened.donated.into_iter().collect()))
    }

    pub(crate) fn open_create_at(&self, req: OpenCreateAtReq) -> Reply {
        let dir = self.dir(req.common.dir_fd)?;
        let name = name(&req.name)?;
        let flags = mask_flags(req.flags)?;
        self.fds.lock().ensure_room(2)?;
        let (node, opened) = {
            let _rename = self.server.rename_lock.read();
            let _dir = dir.node.lock.write();
            self.server
                .backend()
                .create(&dir.file, name, create_attrs(&req.common), flags)?
        };
        let Opened { open, donated } = opened;
        let (child, control) = self.new_control(node)?;
        let new_fd = match self.register_open(control, open, flags) {
            Ok(id) => id,
            Err(errno) => {
                self.forget([child.control_fd]);
                return Err(errno);
            }
        };
        let resp = AnyResponse::OpenCreateAt(OpenCreateAtResp { child, new_fd });
        Ok((resp, donated.into_iter().collect()))
    }

    fn register_open(
        &self,
        control: Arc<ControlFd<B>>,
        open: B::Open,
        flags: OpenFlags,
    ) -> Result<lisafs_protocol::wire::FdId, Errno> {
        let fd = OpenFd {
            control,
            open,
            readable: flags.read,
            writable: flags.write,
        };
        self.fds.lock().insert(FdEntry::Open(Arc::new(fd)))
    }

    /// Close never fails: unknown IDs are ignored, as lisafs specifies.
    pub(crate) fn close(&self, req: CloseReq) -> CloseResp {
        self.forget(req.fds);
        CloseResp {}
    }

    /// Syncs every FD and reports the first failure; all are attempted.
    pub(crate) fn fsync(&self, req: FSyncReq) -> Result<FSyncResp, Errno> {
        let mut first_error = None;
        for id in req.fds {
            let result = self.open_fd(id).and_then(|fd| {
                let _node = fd.control.node.lock.read();
                self.server.backend().sync(&fd.open)
            });
            if let Err(errno) = result {
                first_error.get_or_insert(errno);
            }
        }
        first_error.map_or(Ok(FSyncResp {}), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_keep_only_access_mode_and_trunc() {
        let o_append_nonblock_creat = 0o2000 | 0o4000 | 0o100;
        assert_eq!(
            mask_flags(O_RDWR | O_TRUNC | o_append_nonblock_creat),
            Ok(OpenFlags {
                read: true,
                write: true,
                truncate: true
            })
        );
        assert_eq!(
            mask_flags(0),
            Ok(OpenFlags {
                read: true,
                write: false,
                truncate: false
            })
        );
        assert_eq!(mask_flags(3), Err(Errno::EINVAL));
        assert!(!wants_write(0o2000));
        assert!(wants_write(O_TRUNC));
    }
}
