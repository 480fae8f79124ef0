//! Path rules (`[[mount.rule]]`): per-path policy as a [`Hook`], decided on every request
//! by where the file is *now* within the share.
//!
//! A rule has a glob over the path relative to the mount root (`*` and `?` stay within a
//! component, `**` spans any number of components), optional operation classes (all when
//! absent) and an action: `allow`, `deny` (`EACCES`), `readonly` (`EACCES` for every
//! mutation: write, create, remove, rename, setattr, connect) or `hide` (as if absent:
//! `ENOENT`, left out of listings, walks stop there). The first rule that applies decides;
//! none means allow.
//!
//! Why it cannot be bypassed:
//!
//! * paths are current ([`Op::path`]): a file renamed (by the client or a host process)
//!   is judged where it is, even through an FD held across the rename; a file with no
//!   place in the share (unlinked, or moved out by the host) keeps only its I/O and stat,
//!   as a donated FD would;
//! * a rename or hard link is checked at both paths, and refused outright when the source
//!   is something a non-`allow` rule covers, or a directory whose move could change the
//!   verdict on something beneath it (a rule like `**/*.log`, which looks only at a file's
//!   own name, moves with it): the client cannot move a restricted file (or a directory
//!   that might hold one) out of its rule's reach, nor give it a second, unrestricted name;
//! * a file any non-`allow` rule may cover is never donated, so every read and write of it
//!   is an RPC the rules see;
//! * symlinks are never followed by the gofer: a link's target is walked, and judged, as
//!   its own path.
//!
//! What it cannot see: a mount FD given with `donate_mount_fd` (so the two cannot be
//! combined), and hard links that already existed on the host (each name is judged as
//! itself).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, StatxFlags};

use lisafs_server::hooks::{Hook, Op, OpClass};
use lisafs_server::wire::Errno;

/// What a rule does to the operations it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let them run (and stop looking).
    Allow,
    /// Refuse them with `EACCES`.
    Deny,
    /// Refuse the mutations among them with `EACCES`, let the rest run.
    ReadOnly,
    /// Act as if the path did not exist.
    Hide,
}

impl Action {
    /// The action named `name` in a config file.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "allow" => Some(Self::Allow),
            "deny" => Some(Self::Deny),
            "readonly" => Some(Self::ReadOnly),
            "hide" => Some(Self::Hide),
            _ => None,
        }
    }

    /// Its name in a config file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::ReadOnly => "readonly",
            Self::Hide => "hide",
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The glob, as written.
    pub path: String,
    /// The classes it covers; empty: all.
    pub ops: Vec<OpClass>,
    /// What it does.
    pub action: Action,
}

impl Rule {
    /// Checks the glob: components of literal text, `*`, `?` and `**` (alone in its
    /// component); no leading `/`, no `.` or `..` components, no character classes.
    pub fn validate(&self) -> Result<(), String> {
        if self.path.is_empty() || self.path.starts_with('/') {
            return Err(format!(
                "rule path {:?}: relative to the mount root",
                self.path
            ));
        }
        for part in self.path.split('/') {
            let bad = part.is_empty()
                || part == "."
                || part == ".."
                || part.contains(['[', ']', '{', '}', '\\'])
                || (part.contains("**") && part != "**");
            if bad {
                return Err(format!(
                    "rule path {:?}: components are names with * and ?, or **",
                    self.path
                ));
            }
        }
        Ok(())
    }

    fn covers(&self, class: OpClass) -> bool {
        self.ops.is_empty() || self.ops.contains(&class)
    }
}

/// The rules of one mount, as a [`Hook`]. Clones share the rules: [`Rules::replace`] on
/// one (a reload) changes them for all.
#[derive(Debug, Clone)]
pub struct Rules {
    set: Arc<RwLock<Arc<RuleSet>>>,
    /// The mount's root, to tell whether a renamed path is a directory (which may hold
    /// restricted files) or not; without it every rename source counts as one.
    root: Option<Arc<OwnedFd>>,
    /// Whether opened files may be donated at all (`donate = false`: every read and write
    /// is an RPC the gofer sees).
    donate: bool,
}

/// One version of a mount's rules, compiled, with what they can affect worked out once,
/// so that an operation no rule can affect never asks for its path.
#[derive(Debug, Default)]
struct RuleSet {
    rules: Vec<Compiled>,
    /// By [`OpClass::ALL`] index: whether some rule covers the class.
    covered: [bool; OpClass::ALL.len()],
    /// Whether some rule hides.
    any_hide: bool,
    /// Whether some rule is not `allow`.
    any_restriction: bool,
}

/// A rule, its name in logs and the audit log, and its glob split into components once.
#[derive(Debug)]
struct Compiled {
    rule: Rule,
    name: Arc<str>,
    pattern: Vec<Box<[u8]>>,
}

impl RuleSet {
    fn new(rules: Vec<Rule>) -> Self {
        let rules: Vec<_> = rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                let name = format!("rule {} ({} {})", i + 1, rule.action.name(), rule.path);
                Compiled {
                    pattern: pattern(&rule.path),
                    name: name.into(),
                    rule,
                }
            })
            .collect();
        Self {
            covered: OpClass::ALL.map(|class| rules.iter().any(|c| c.rule.covers(class))),
            any_hide: rules.iter().any(|c| c.rule.action == Action::Hide),
            any_restriction: rules.iter().any(|c| c.rule.action != Action::Allow),
            rules,
        }
    }

    fn covers(&self, class: OpClass) -> bool {
        OpClass::ALL
            .iter()
            .position(|c| *c == class)
            .is_some_and(|i| self.covered[i])
    }

    /// The first rule that applies to `class` at `path`, and the verdict.
    fn decide(&self, path: &Path, class: OpClass) -> Option<(&Arc<str>, Result<(), Errno>)> {
        let parts = components(path)?;
        self.rules.iter().find_map(
            |Compiled {
                 rule,
                 name,
                 pattern,
             }| {
                if !rule.covers(class) || !glob(pattern, &parts) {
                    return None;
                }
                let verdict = match rule.action {
                    Action::Allow => Ok(()),
                    Action::Deny => Err(Errno::EACCES),
                    Action::ReadOnly if mutates(class) => Err(Errno::EACCES),
                    Action::ReadOnly => Ok(()),
                    Action::Hide => Err(Errno::ENOENT),
                };
                Some((name, verdict))
            },
        )
    }

    /// Whether a non-`allow` rule covers `path` itself (`beneath`: or could cover
    /// something beneath it).
    fn restricts(&self, path: &Path, beneath: bool) -> bool {
        let Some(parts) = components(path) else {
            return true;
        };
        self.rules.iter().any(|Compiled { rule, pattern, .. }| {
            rule.action != Action::Allow
                && match beneath {
                    true => glob_or_beneath(pattern, &parts),
                    false => glob(pattern, &parts),
                }
        })
    }

    /// Whether moving the directory `from` to `to` could change what the rules say about
    /// something beneath it: when a non-`allow` rule may cover something beneath `from`,
    /// and some rule whose verdict depends on where a file is (every rule but `**/NAME`,
    /// which looks only at a file's own name) reaches beneath `from` or `to`.
    fn moves_verdicts(&self, from: &Path, to: Option<&Path>) -> bool {
        let (Some(old), Some(new)) = (components(from), to.and_then(components)) else {
            return true;
        };
        let depends_on_place = self.rules.iter().any(|Compiled { pattern, .. }| {
            let by_name_only = pattern.len() == 2 && *pattern[0] == *b"**" && *pattern[1] != *b"**";
            !by_name_only && (glob_or_beneath(pattern, &old) || glob_or_beneath(pattern, &new))
        });
        depends_on_place && self.restricts(from, true)
    }

    fn check(&self, path: Option<&Path>, class: OpClass) -> Result<(), Errno> {
        // A file with no place in the share: unlinked (open, unlink, go on using it, as
        // programs do), or moved out by the host. Its I/O and attributes go on as on a
        // donated FD (it was judged when opened, and no rule names a file outside the
        // share); anything that would change the tree through it is refused.
        let Some(path) = path else {
            return match class {
                OpClass::Stat | OpClass::Read | OpClass::Write => Ok(()),
                _ => Err(Errno::EACCES),
            };
        };
        match self.decide(path, class) {
            Some((name, Err(errno))) => {
                lisafs_server::context::set_rule(Arc::clone(name));
                Err(errno)
            }
            Some((name, Ok(()))) => {
                lisafs_server::context::set_rule(Arc::clone(name));
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// The classes `readonly` refuses.
fn mutates(class: OpClass) -> bool {
    !matches!(class, OpClass::Stat | OpClass::Read)
}

impl Rules {
    /// The hook for `rules` (validated with [`Rule::validate`]) of the mount whose root is
    /// `root` (an FD of the share's root, used only to look at the type of a rename's
    /// source; `None` treats every source as a directory).
    pub fn new(rules: Vec<Rule>, root: Option<OwnedFd>) -> Self {
        Self {
            set: Arc::new(RwLock::new(Arc::new(RuleSet::new(rules)))),
            root: root.map(Arc::new),
            donate: true,
        }
    }

    /// The same rules, with donation of opened files allowed (where no rule restricts
    /// the file) or never.
    pub fn donating(mut self, donate: bool) -> Self {
        self.donate = donate;
        self
    }

    /// Replaces the rules (validated with [`Rule::validate`]) of this hook and of every
    /// clone of it, from the next request on; a request under way finishes under the
    /// rules it started with.
    pub fn replace(&self, rules: Vec<Rule>) {
        let set = Arc::new(RuleSet::new(rules));
        *self.set.write() = set;
    }

    /// The rules as they are now.
    fn current(&self) -> Arc<RuleSet> {
        Arc::clone(&self.set.read())
    }
}

impl Hook for Rules {
    fn before(&self, op: &Op<'_>) -> Result<(), Errno> {
        let set = self.current();
        let class = op.class();
        if op.has_new_path() {
            if set.rules.is_empty() {
                return Ok(());
            }
            set.check(op.path(), class)?;
            set.check(op.new_path(), class)?;
            // A rename or a hard link must not carry a restricted file (or a directory
            // that may hold one) out of its rules' reach. (A hard link's source is never a
            // directory.)
            let restricted = op.path().is_none_or(|path| {
                set.restricts(path, false)
                    || (class == OpClass::Rename
                        && set.moves_verdicts(path, op.new_path())
                        && is_dir(self.root.as_deref(), path))
            });
            return match restricted {
                true => Err(Errno::EACCES),
                false => Ok(()),
            };
        }
        // No rule covers the class: no need to ask where the file is.
        match set.covers(class) {
            true => set.check(op.path(), class),
            false => Ok(()),
        }
    }

    fn hides(&self, dir: &Op<'_>, name: &[u8]) -> bool {
        let set = self.current();
        if !set.any_hide {
            return false;
        }
        let Some(dir) = dir.path() else {
            return true;
        };
        let path = dir.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name));
        matches!(
            set.decide(&path, OpClass::Stat),
            Some((_, Err(Errno::ENOENT)))
        )
    }

    fn donate(&self, op: &Op<'_>) -> bool {
        let set = self.current();
        // Only regular files are asked about: nothing lies beneath them.
        self.donate
            && (!set.any_restriction || op.path().is_some_and(|path| !set.restricts(path, false)))
    }
}

/// Whether `path` (relative to the root) is a directory, looked up without following
/// any symlink and without leaving the root; unknown counts as one.
fn is_dir(root: Option<&OwnedFd>, path: &Path) -> bool {
    let Some(root) = root else {
        return true;
    };
    if path.as_os_str().is_empty() {
        return true;
    }
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // statx, not fstat: the serving seccomp filter allows only the former.
    let stat = |fd: OwnedFd| rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH, StatxFlags::TYPE);
    rustix::fs::openat2(root, path, flags, Mode::empty(), how)
        .and_then(stat)
        .map_or(true, |st| {
            FileType::from_raw_mode(st.stx_mode.into()) == FileType::Directory
        })
}

/// `path`'s components as bytes, or `None` for a path that is not plain relative.
fn components(path: &Path) -> Option<Vec<&[u8]>> {
    use std::path::Component;
    path.components()
        .map(|c| match c {
            Component::Normal(name) => Some(name.as_encoded_bytes()),
            _ => None,
        })
        .collect()
}

fn pattern(glob: &str) -> Vec<Box<[u8]>> {
    glob.split('/').map(|part| part.as_bytes().into()).collect()
}

/// Whether `pattern` matches the components `path` exactly.
fn glob(pattern: &[Box<[u8]>], path: &[&[u8]]) -> bool {
    let Some((part, rest)) = pattern.split_first() else {
        return path.is_empty();
    };
    if **part == *b"**" {
        return glob(rest, path)
            || path
                .split_first()
                .is_some_and(|(_, tail)| glob(pattern, tail));
    }
    path.split_first()
        .is_some_and(|(name, tail)| component(part, name) && glob(rest, tail))
}

/// Whether `pattern` matches `path` or some path beneath it.
fn glob_or_beneath(pattern: &[Box<[u8]>], path: &[&[u8]]) -> bool {
    // The path is used up: something beneath it can match what is left.
    let Some((name, tail)) = path.split_first() else {
        return true;
    };
    let Some((part, rest)) = pattern.split_first() else {
        return false;
    };
    if **part == *b"**" {
        return glob_or_beneath(rest, path) || glob_or_beneath(pattern, tail);
    }
    component(part, name) && glob_or_beneath(rest, tail)
}

/// Whether one component `name` matches `part` (`*` any run, `?` one byte).
fn component(part: &[u8], name: &[u8]) -> bool {
    match (part.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            component(rest, name)
                || name
                    .split_first()
                    .is_some_and(|(_, tail)| component(part, tail))
        }
        (Some((b'?', rest)), Some((_, tail))) => component(rest, tail),
        (Some((p, rest)), Some((n, tail))) => p == n && component(rest, tail),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(glob_text: &str, path: &str) -> bool {
        glob(&pattern(glob_text), &components(Path::new(path)).unwrap())
    }

    #[test]
    fn globs_match_within_and_across_components() {
        assert!(matches("secrets/**", "secrets/a/b"));
        assert!(matches("secrets/**", "secrets"));
        assert!(!matches("secrets/**", "secretsx/a"));
        assert!(matches("**/*.log", "a/b/c.log"));
        assert!(matches("**/*.log", "c.log"));
        assert!(!matches("*.log", "a/c.log"));
        assert!(matches("a/?/c", "a/b/c"));
        assert!(!matches("a/?/c", "a/bb/c"));
    }

    #[test]
    fn restriction_reaches_the_directories_that_may_hold_a_match() {
        let rule = |path: &str| Rule {
            path: path.into(),
            ops: vec![],
            action: Action::Deny,
        };
        let rules = RuleSet::new(vec![rule("data/**/key")]);
        for path in ["data", "data/x", "data/x/key", ""] {
            assert!(rules.restricts(Path::new(path), true), "{path}");
        }
        assert!(rules.restricts(Path::new("data/x/key"), false));
        assert!(!rules.restricts(Path::new("data/x"), false));
        assert!(!rules.restricts(Path::new("other"), true));
        assert!(!rules.restricts(Path::new("other/data"), true));
        // A "**" rule may match beneath any directory, but no file but its own matches.
        let logs = RuleSet::new(vec![rule("**/*.log")]);
        assert!(logs.restricts(Path::new("a/b"), true));
        assert!(!logs.restricts(Path::new("a/b"), false));
        // ... and moving a directory does not change what it says of its contents, unless
        // a rule that looks at the place reaches the old or the new one.
        let (a, b) = (Path::new("a"), Path::new("b"));
        assert!(!logs.moves_verdicts(a, Some(b)));
        let mixed = RuleSet::new(vec![
            Rule {
                action: Action::Allow,
                ..rule("pub/**")
            },
            rule("**/*.log"),
        ]);
        assert!(mixed.moves_verdicts(a, Some(Path::new("pub/a"))));
        assert!(!mixed.moves_verdicts(a, Some(b)));
        assert!(rules.moves_verdicts(Path::new("data/x"), Some(b)));
    }

    #[test]
    fn bad_globs_are_refused() {
        for path in ["", "/abs", "a//b", "../x", "a/**b", "[ab]", "a/./b"] {
            let rule = Rule {
                path: path.into(),
                ops: vec![],
                action: Action::Deny,
            };
            assert!(rule.validate().is_err(), "{path}");
        }
    }
}
