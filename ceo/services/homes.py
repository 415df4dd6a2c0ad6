"""Home directories: everything root does inside a member's or club's directory.

The helper is root in directories their owners control, so every operation here is written
against an owner who races it: trees are built in a root-only staging directory and renamed
into place, ownership is set with lchown, reads refuse links and FIFOs, and files are
replaced through a new file renamed over the old one.
"""

from __future__ import annotations

import os
import stat

from ..errors import BadInput, NotFound
from ..files import open_plain

READ_LIMIT = 65536


def copy_skeleton(skel: str, path: str, number: int):
    """Copy and chown in a root-only staging directory, then rename into place: the member
    never owns anything under construction, so no link swapped in mid-walk can redirect a
    chown made as root."""
    import shutil
    import tempfile  # here, not at the top: `ceo --help` and every read import this module
    staging = tempfile.mkdtemp(prefix=".ceo-new-", dir=os.path.dirname(path))  # 0700, root
    try:
        new = os.path.join(staging, "home")
        shutil.copytree(skel, new, symlinks=True)
        for root, dirs, files in os.walk(new):
            for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.lchown(name, number, number)
        os.chmod(new, 0o755)
        os.rename(new, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def owned_dir(path: str, number: int, who: str) -> str:
    """path, if it is a real directory (not a link) owned by uid number `number`."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise NotFound(f"{who} has no home directory {path}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != number:
        raise BadInput(f"{path} is not {who}'s own directory; ask syscom to look at it")
    return path


def read_file(path: str) -> str | None:
    """A small file as its owner left it (None if absent): never follow a link, never block
    on a FIFO, read only a regular file with no other name (a hard link to a file the owner
    cannot read would show it to them), and only so much."""
    fd = open_plain(path, lambda why: BadInput(f"{path} is not a plain file ({why}); ask syscom to look at it"))
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise BadInput(f"{path} is not a plain file; ask syscom to look at it")
        return os.read(fd, READ_LIMIT).decode("utf-8", "replace")
    finally:
        os.close(fd)


def write_file(directory: str, name: str, text: str | None, number: int, mode: int = 0o644):
    """Replace directory/name atomically, through a new file no link can redirect; None
    removes it."""
    path = os.path.join(directory, name)
    if text is None:
        if os.path.lexists(path):
            os.unlink(path)
        return
    import tempfile
    fd, tmp = tempfile.mkstemp(prefix=f"{name}.", dir=directory)
    closed = False
    try:
        os.write(fd, text.encode())
        os.fchown(fd, number, number)
        os.fchmod(fd, mode)
        os.close(fd)
        closed = True
        os.replace(tmp, path)
    except BaseException:
        if not closed:
            os.close(fd)
        os.unlink(tmp)
        raise


# --- files ceo keeps for an account: the database info files -----------------------------------

def account_home(base: str, home: str | None, number: int, who: str) -> str:
    """The home directory LDAP names for an account, if it sits directly in `base` (no deeper:
    an account owning a directory on the way could swap a link in) and is a real directory
    owned by the account."""
    if not home or os.path.dirname(os.path.normpath(home)) != os.path.normpath(base) \
            or os.path.basename(os.path.normpath(home)) in ("", ".", ".."):
        raise BadInput(f"{who}'s home directory {home!r} is not in {base}; ask syscom to look at it")
    return owned_dir(os.path.normpath(home), number, who)


def keep_old(directory: str, name: str) -> bool:
    """Rename directory/name to name.old (an older .old is replaced): renamed, never read or
    followed, so a link there is moved as a link. False if there was none."""
    path = os.path.join(directory, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        raise BadInput(f"{path} is a directory; move it away first")
    try:
        os.replace(path, path + ".old")
    except OSError as exc:
        raise BadInput(f"cannot keep {path} as {path}.old: {exc.strerror}") from None
    return True


def put_back_old(directory: str, name: str):
    """Undo keep_old: name.old becomes name again."""
    path = os.path.join(directory, name)
    os.replace(path + ".old", path)

# --- shared homes (clubs): POSIX ACLs ---------------------------------------------------------
# Set with Debian's `setfacl` (argument list, never a shell), on a tree still inside a
# root-only staging directory: nobody but root can reach it until it is renamed into place,
# so no link swapped in can redirect an ACL or a chown. (pylibacl would need a compiler and
# libacl headers on every host, and sets default ACLs by path just the same.)

def group_acl(group_number: int, others: str = "---") -> str:
    """Every entry rw (directories rwx) for the group; each directory's default ACL hands the
    same to what is created in it later, by any member of the group, whatever their umask.
    Others get `others` ("---", or "rX" where the web server must read)."""
    g = int(group_number)
    return (f"u::rwX,g::rwX,g:{g}:rwX,m::rwX,o::{others},"
            f"d:u::rwx,d:g::rwx,d:g:{g}:rwx,d:m::rwx,d:o::{others.replace('X', 'x')}")


def share(path: str, number: int, public=("www",)):
    """The ACLs of a home the group `number` shares: the group everywhere; others may only
    pass through the home and read what is in `public` (the web server serves ~club/www). A
    club's other files are its members' alone, whatever umask made them (a review found the
    defaults had made every new file world-readable)."""
    set_acl(path, group_acl(number))
    for name in public:
        set_acl(os.path.join(path, name), group_acl(number, "rX"))
    set_acl(path, "o::x", recursive=False)


def set_acl(path: str, spec: str, recursive: bool = True):
    """setfacl (-R: the tree) on path, never following a link (-P)."""
    import subprocess
    from ..errors import ServiceUnavailable
    try:
        proc = subprocess.run(["setfacl", *(["-R"] if recursive else []), "-P", "-m", spec, "--", path],
                              capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise ServiceUnavailable("setfacl is not installed on this host (Debian's acl package)") from None
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise ServiceUnavailable(f"setfacl failed on {path}: {why[:200]}")


def copy_shared_skeleton(skel: str, path: str, number: int, dirs=("www",)):
    """A home the group `number` shares with its owner `number`: the skeleton as copy_skeleton
    makes it, the directories `dirs` made if the skeleton lacks them, every directory setgid
    (new files keep the group) with the group ACL; all of it in a root-only staging directory,
    then renamed into place."""
    import shutil
    import tempfile
    staging = tempfile.mkdtemp(prefix=".ceo-new-", dir=os.path.dirname(path))  # 0700, root
    try:
        new = os.path.join(staging, "home")
        copy_skeleton(skel, new, number)
        for name in dirs:
            made = os.path.join(new, name)
            if not os.path.lexists(made):
                os.mkdir(made, 0o775)
                os.lchown(made, number, number)
            elif not stat.S_ISDIR(os.lstat(made).st_mode):
                raise BadInput(f"the skeleton's {name} is not a directory; ask syscom to look at {skel}")
        for root, _, _ in os.walk(new):  # real directories only: links are not followed
            os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) | stat.S_ISGID)
        share(new, number, dirs)
        os.rename(new, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
