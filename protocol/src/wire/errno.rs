//! The only error that crosses the wire.

use std::fmt;
use std::io;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A Linux errno value, as carried by `ErrorResp` (a `u32`). Every failure a server reports
/// to a client is one of these; host paths and other details stay in the server's log.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(transparent)]
pub struct Errno(pub u32);

macro_rules! errnos {
    ($($name:ident = $value:literal),* $(,)?) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "` (", stringify!($value), ").")]
                pub const $name: Errno = Errno($value);
            )*

            /// The symbolic name, for the values lisafs uses.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, EBADF = 9, EAGAIN = 11,
    ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17, EXDEV = 18, ENODEV = 19,
    ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENFILE = 23, EMFILE = 24, ETXTBSY = 26,
    EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30, EMLINK = 31, ERANGE = 34,
    ENAMETOOLONG = 36, ENOSYS = 38, ENOTEMPTY = 39, ELOOP = 40, ENODATA = 61,
    EOVERFLOW = 75, ENOTSOCK = 88, EPROTOTYPE = 91, EOPNOTSUPP = 95, ECONNREFUSED = 111,
    ECONNRESET = 104, ENOBUFS = 105, EDQUOT = 122, EREMOTEIO = 121,
}

impl Errno {
    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

/// The C library's description, e.g. "No such file or directory".
impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let err = i32::try_from(self.0).map(io::Error::from_raw_os_error);
        match err {
            // io::Error's Display appends " (os error N)"; keep only the description.
            Ok(err) => {
                let text = err.to_string();
                let text = text.split(" (os error").next().unwrap_or(&text);
                f.write_str(text)
            }
            Err(_) => write!(f, "errno {}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

impl From<rustix::io::Errno> for Errno {
    fn from(err: rustix::io::Errno) -> Self {
        Errno(u32::try_from(err.raw_os_error()).unwrap_or(Errno::EIO.0))
    }
}

/// Keeps the OS errno when there is one; anything else is reported as `EIO`.
impl From<io::Error> for Errno {
    fn from(err: io::Error) -> Self {
        err.raw_os_error()
            .and_then(|raw| u32::try_from(raw).ok())
            .map_or(Errno::EIO, Errno)
    }
}

impl From<Errno> for io::Error {
    fn from(errno: Errno) -> Self {
        i32::try_from(errno.0).map_or_else(
            |_| io::Error::other(format!("errno {}", errno.0)),
            io::Error::from_raw_os_error,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_c_library_description() {
        assert_eq!(Errno::ENOENT.to_string(), "No such file or directory");
        assert_eq!(format!("{:?}", Errno::EOPNOTSUPP), "EOPNOTSUPP");
        assert_eq!(format!("{:?}", Errno(4000)), "Errno(4000)");
    }

    #[test]
    fn conversions_keep_the_value() {
        assert_eq!(Errno::from(rustix::io::Errno::NOENT), Errno::ENOENT);
        assert_eq!(Errno::from(io::Error::from_raw_os_error(13)), Errno::EACCES);
        assert_eq!(Errno::from(io::Error::other("not an errno")), Errno::EIO);
        assert_eq!(io::Error::from(Errno::EBADF).raw_os_error(), Some(9));
    }
}
