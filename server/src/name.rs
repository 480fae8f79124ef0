//! Validated directory-entry names.

use std::fmt;

use lisafs_protocol::wire::Errno;

/// One path component the client sent, checked once by the server so no backend ever
/// sees "", ".", "..", a "/" or a NUL byte. (Length limits are the host's: `ENAMETOOLONG`.)
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name<'a>(&'a [u8]);

impl<'a> Name<'a> {
    /// Checks `bytes`; anything that is not a single ordinary component is `EINVAL`.
    pub fn new(bytes: &'a [u8]) -> Result<Self, Errno> {
        let climbs = bytes == b".." || bytes.iter().any(|&b| b == b'/' || b == 0);
        if climbs {
            crate::refused!(
                crate::Refusal::Escape,
                name = %bytes.escape_ascii(),
                "refused a name that is not one component"
            );
        }
        if climbs || bytes.is_empty() || bytes == b"." {
            return Err(Errno::EINVAL);
        }
        Ok(Self(bytes))
    }

    /// The bytes of the name.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for name in [&b"a"[..], b"...", b".hidden", b"a b", b"\xff\xfe"] {
            assert_eq!(Name::new(name).map(|n| n.as_bytes()), Ok(name));
        }
    }

    #[test]
    fn special_names_are_einval() {
        for name in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b", b"../x"] {
            assert_eq!(Name::new(name), Err(Errno::EINVAL), "{name:?}");
        }
    }
}
