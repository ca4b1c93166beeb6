//! Private files: on unix, every directory the tier creates is `0700` and
//! every file `0600`, whatever the process's umask.
//!
//! Entries hold the cache's keys (which name users' queries) and values
//! (rendered pages), so other local users must not read them. The modes
//! are given at creation (`mkdir` and `open` with an explicit mode), never
//! fixed afterwards, so no file is readable by others for even an instant;
//! a umask can only take bits away from them, never add any. A temporary
//! file keeps its mode when it is renamed into place.
//!
//! Off unix the files get the permissions the platform gives new files in
//! that directory (on Windows, the ACLs inherited from the parent).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

/// Options that create a file readable and writable by its owner only.
pub(super) fn file_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Create `dir` and any missing parents, each with mode `0700`.
pub(super) fn create_dir_all(dir: &Path) -> io::Result<()> {
    #[allow(unused_mut)]
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Take the group's and others' permissions off an existing directory (one
/// an older version, or another tool, created with the umask's modes),
/// keeping the owner's.
pub(super) fn restrict_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(dir)?;
        let mode = meta.permissions().mode();
        if meta.is_dir() && mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
