//! Who may use the control socket: root, the daemon's own user, and the members of the
//! socket's group (`encoder-bridge` by default), by the peer's credentials (`SO_PEERCRED`)
//! and the group database (`getgrouplist`, so NSS groups count as `id` shows them).
//!
//! The socket's mode (0660, that group) already keeps others out at `connect`; this check is
//! the second lock, and it is the one that logs who was turned away.

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

/// The rule, resolved once at start.
#[derive(Debug, Clone)]
pub struct Policy {
    own_uid: u32,
    group: Option<(u32, String)>,
}

/// A peer as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its effective uid.
    pub uid: u32,
    /// Its effective gid.
    pub gid: u32,
    /// Its pid, when known (for the log).
    pub pid: Option<i32>,
}

impl Policy {
    /// Root, this process's user and the members of `group` (when it exists; a missing group
    /// is logged and admits nobody else).
    pub fn new(group: &str) -> Self {
        let resolved = match Group::from_name(group) {
            Ok(Some(g)) => Some((g.gid.as_raw(), group.to_owned())),
            Ok(None) => {
                tracing::warn!(
                    group,
                    "control socket: group not found; only root and this user may use the socket (hint: create it with systemd-sysusers, or set [control] group)"
                );
                None
            }
            Err(e) => {
                tracing::warn!(group, "control socket: cannot read the group database: {e}");
                None
            }
        };
        Self {
            own_uid: Uid::effective().as_raw(),
            group: resolved,
        }
    }

    /// The group's id, if it exists.
    pub fn gid(&self) -> Option<u32> {
        self.group.as_ref().map(|(gid, _)| *gid)
    }

    /// `Ok` when `peer` may use the socket, else why not (for the log and the answer).
    pub fn check(&self, peer: Peer) -> Result<(), String> {
        if peer.uid == 0 || peer.uid == self.own_uid {
            return Ok(());
        }
        let Some((gid, name)) = &self.group else {
            return Err(format!(
                "uid {} is neither root nor the daemon's user",
                peer.uid
            ));
        };
        if peer.gid == *gid || member(peer.uid, *gid) {
            return Ok(());
        }
        Err(format!(
            "uid {} is neither root nor a member of group {name} (hint: sudo usermod -aG {name} USER, then log in again)",
            peer.uid
        ))
    }
}

/// Whether the user `uid` belongs to `gid` in the group database (primary or supplementary).
fn member(uid: u32, gid: u32) -> bool {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    if user.gid.as_raw() == gid {
        return true;
    }
    let Ok(name) = CString::new(user.name) else {
        return false;
    };
    getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(&Gid::from_raw(gid)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer {
            uid,
            gid,
            pid: None,
        }
    }

    #[test]
    fn root_and_the_group_pass_others_do_not() {
        // `root` exists everywhere; `nobody` is in no group but its own.
        let policy = Policy::new("root");
        assert!(policy.check(peer(0, 0)).is_ok());
        assert!(policy.check(peer(65534, 0)).is_ok(), "the group as gid");
        let refused = policy.check(peer(65534, 65534)).unwrap_err();
        assert!(refused.contains("uid 65534"), "{refused}");
        assert!(refused.contains("usermod -aG root"), "{refused}");
        let none = Policy::new("no-such-group-encoder-bridge");
        assert_eq!(none.gid(), None);
        assert!(none.check(peer(65534, 65534)).is_err());
    }
}
