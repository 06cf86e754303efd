//! The open-file limit, and the connection cap it leaves room for. Every
//! connection is a file descriptor; so are the database's files or
//! connections, the listener and the runtime's own. A server at its file
//! limit cannot accept anyone, so connections are capped below it.

/// Descriptors kept out of the connection cap: the database (SQLite's file,
/// journal and shared memory per pooled connection, or 16 PostgreSQL
/// connections), the listener, the runtime, logs, and the answers written to
/// clients refused at the cap.
pub const RESERVED_FILES: u64 = 128;

/// Descriptors kept, beyond those open once the server has started, for
/// what may open later: the read pool's connections not open yet (4 of 3
/// files each), outbound webhook deliveries, a backup's copy, the answers
/// to clients refused at the cap. Under a small limit (a quarter of it is
/// less than [`RESERVED_FILES`]) the cap keeps this much room.
pub const LATER_FILES: u64 = 24;

/// How many files this process has open now (Linux: `/proc/self/fd`;
/// elsewhere 0, unknown).
pub fn open_files() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64)
}

/// When the hard limit is "unlimited", the soft limit is raised to this
/// (Linux's default `nr_open`).
#[cfg(unix)]
const UNLIMITED_AS: u64 = 1 << 20;

/// The open-file limit after raising the soft limit to the hard one (a
/// service manager's default soft limit is often 1,024 while the hard one
/// allows far more); `None` where there is no such limit to read.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
            .map_err(|error| tracing::warn!(%error, "cannot read the open-file limit"))
            .ok()?;
        let wanted = if hard == RLIM_INFINITY {
            UNLIMITED_AS
        } else {
            hard
        };
        if wanted > soft {
            if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
                tracing::warn!(%error, soft, hard, "cannot raise the open-file limit");
                return Some(soft);
            }
            return Some(wanted);
        }
        Some(soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connections held when no `--max-connections` asks for another
/// number: each may hold up to ~280 KB while a client sends a long head
/// slowly (hyper's buffer, up to 128 KiB, and what the allocator keeps
/// around it), so this many cost at most about 1.1 GB, whatever the file
/// limit (a container's is often a million); idle ones make room for new
/// clients anyway.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// The most connections to hold under `file_limit` (`None`: no known limit)
/// with `open` files open already: `wanted` if given, else
/// [`DEFAULT_MAX_CONNECTIONS`], but never more than the limit less
/// [`RESERVED_FILES`] (a quarter of it for a small limit, yet never less
/// than the files open plus [`LATER_FILES`]: at 64 files, a server holding
/// 22 of its own had a cap of 48 connections and ran out of files at about
/// 40, locking new clients out instead of closing idle ones), and never
/// under 1.
pub fn connection_cap(file_limit: Option<u64>, wanted: Option<usize>, open: u64) -> usize {
    let room = file_limit.map_or(usize::MAX, |limit| {
        let reserved = RESERVED_FILES
            .min(limit / 4)
            .max(open.saturating_add(LATER_FILES));
        let room = limit.saturating_sub(reserved).max(1);
        usize::try_from(room).unwrap_or(usize::MAX)
    });
    wanted.unwrap_or(DEFAULT_MAX_CONNECTIONS).clamp(1, room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_below_the_file_limit() {
        assert_eq!(connection_cap(Some(1024), None, 22), 896);
        assert_eq!(connection_cap(Some(1024), Some(100), 22), 100);
        assert_eq!(connection_cap(Some(1024), Some(5000), 22), 896);
        assert_eq!(connection_cap(Some(256), None, 22), 192);
        // A small limit: room for the files open and those opened later.
        assert_eq!(connection_cap(Some(64), None, 0), 40);
        assert_eq!(connection_cap(Some(64), None, 22), 18);
        assert_eq!(connection_cap(Some(100), None, 22), 54);
        assert_eq!(connection_cap(Some(64), None, 60), 1);
        assert_eq!(connection_cap(Some(0), Some(0), 0), 1);
        // A large limit: the default, unless asked for more.
        assert_eq!(connection_cap(Some(1 << 20), None, 22), 4096);
        assert_eq!(connection_cap(None, None, 22), 4096);
        assert_eq!(connection_cap(Some(1 << 20), Some(50_000), 22), 50_000);
    }

    #[test]
    fn open_files_counts_this_process_files() {
        // Other tests of this process open and close files meanwhile: at
        // least the standard three and the 16 held here.
        let held: Vec<_> = (0..16).map(|_| std::fs::File::open("Cargo.toml")).collect();
        assert!(held.iter().all(Result::is_ok));
        if cfg!(target_os = "linux") {
            assert!(open_files() >= 19, "{}", open_files());
        }
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise_open_file_limit();
        #[cfg(unix)]
        {
            use nix::sys::resource::{Resource, getrlimit};
            let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("the limit");
            assert_eq!(limit, Some(soft));
            assert!(soft == hard || hard == nix::sys::resource::RLIM_INFINITY);
        }
        #[cfg(not(unix))]
        assert_eq!(limit, None);
    }
}
