"""The system calls of a syscall-emulation process, served by the host.

Each ``sys_<name>`` method takes the six argument registers as integers and
returns the value for RAX (``-errno`` on failure).  An ``OSError`` from the
host becomes ``-errno`` in the dispatcher.  Every guest pointer goes through
the address space's checked access: a bad one gives ``-EFAULT``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import resource
import struct
import time
from collections.abc import Callable
from typing import Final

from kvm_x86.se.address_space import PAGE_MASK, USER_END, AddressSpace, OutOfGuestMemoryError
from kvm_x86.se.names import NUMBERS
from kvm_x86.se.signals import (
    CLD_EXITED,
    SI_USER,
    SIG_DFL,
    SIG_IGN,
    SIGCHLD,
    SIGKILL,
    SIGSTOP,
    SS_DISABLE,
    UNBLOCKABLE,
    SignalInfo,
    Signals,
)

SyscallFunction = Callable[[int, int, int, int, int, int], int]

AT_FDCWD: Final = -100


#: struct statx up to the device numbers (the rest of its 256 bytes stays 0):
#: mask, blksize, attributes, nlink, uid, gid, mode (+2 spare), ino, size,
#: blocks, attributes_mask, atime/btime/ctime/mtime (sec, nsec, 4 reserved),
#: rdev major/minor, dev major/minor
_STATX: Final = struct.Struct("<IIQIIIH2xQQQQ" + "qI4x" * 4 + "IIII")
_STATX_SIZE: Final = 256
#: what statx fills: type, mode, nlink, uid, gid, atime, mtime, ctime, ino,
#: size, blocks (no birth time)
STATX_BASIC_STATS: Final = 0x7FF


def _a_child_exited() -> bool:
    """A child process has ended and waits to be reaped (it is left so)."""
    try:
        return os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return False


def _accessible(prot: int) -> bool:
    """A mapping the program may touch at all (not PROT_NONE)."""
    return bool(prot & (PROT_READ | PROT_WRITE | PROT_EXEC))


def _timestamp(nanoseconds: int) -> tuple[int, int]:
    return nanoseconds // 10**9, nanoseconds % 10**9


def _is_cwd(dirfd: int) -> bool:
    """``dirfd`` is AT_FDCWD: an int in the kernel, so only its low 32 bits count."""
    return dirfd & 0xFFFFFFFF == AT_FDCWD & 0xFFFFFFFF
AT_SYMLINK_NOFOLLOW: Final = 0x100
AT_REMOVEDIR: Final = 0x200
AT_EMPTY_PATH: Final = 0x1000
O_CLOEXEC: Final = 0o2000000
MAP_SHARED: Final = 0x01
MAP_PRIVATE: Final = 0x02
MAP_FIXED: Final = 0x10
MAP_ANONYMOUS: Final = 0x20
MAP_FIXED_NOREPLACE: Final = 0x100000
PROT_READ: Final = 1
PROT_WRITE: Final = 2
PROT_EXEC: Final = 4
MREMAP_MAYMOVE: Final = 1
MREMAP_FIXED: Final = 2
PR_SET_NAME: Final = 15
PR_GET_NAME: Final = 16
ARCH_SET_FS: Final = 0x1002
ARCH_GET_FS: Final = 0x1003
TCGETS: Final = 0x5401
TIOCGWINSZ: Final = 0x5413
F_DUPFD: Final = 0
F_GETFD: Final = 1
F_SETFD: Final = 2
F_GETFL: Final = 3
F_SETFL: Final = 4
F_DUPFD_CLOEXEC: Final = 1030
FD_CLOEXEC: Final = 1
WNOHANG: Final = 1
WUNTRACED: Final = 2
WCONTINUED: Final = 8
WALL_FLAGS: Final = 0x40000000 | 0x80000000 | 0x20000000  # __WALL __WCLONE __WNOTHREAD
#: where anonymous mappings go, downwards (below the stack's reach)
MMAP_TOP: Final = 0x7FFF_F000_0000

_STAT = struct.Struct("<QQQIIIIQqqqqqqqqq24x")
_TIMESPEC = struct.Struct("<qq")
_IOVEC = struct.Struct("<QQ")
_U64 = struct.Struct("<Q")
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_SYS_GETDENTS64: Final = 217

#: ``-errno`` for -(1..4095) as unsigned: how the trace tells errors apart
MAX_ERRNO: Final = 4095


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _neg(code: int) -> int:
    return -code


class ProcessExit(Exception):  # noqa: N818 - control flow, not an error
    """The program ended (exit or exit_group) with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Syscalls:
    """The kernel side of one process: file descriptors, cwd, brk, mmap,
    signal dispositions (recorded only), and the table by number."""

    def __init__(
        self,
        space: AddressSpace,
        *,
        brk: int,
        exe_path: str,
        cwd: str,
        set_fs_base: Callable[[int], None],
        get_fs_base: Callable[[], int],
    ) -> None:
        self.space = space
        self.brk_start = brk
        self.brk_end = brk
        self.exe_path = exe_path
        self.cwd = os.path.abspath(cwd)
        self.set_fs_base = set_fs_base
        self.get_fs_base = get_fs_base
        self.mmap_next = MMAP_TOP
        #: guest fd -> host fd (the host fds are dups: closing them is ours)
        self.fds: dict[int, int] = {}
        self.cloexec: set[int] = set()
        for fd in (0, 1, 2):
            with contextlib.suppress(OSError):
                self.fds[fd] = os.dup(fd)
        self.signals = Signals()
        self.tid_address = 0
        self.name = os.fsencode(os.path.basename(exe_path))[:15]
        self.table: list[SyscallFunction | None] = [None] * 512
        for name, number in NUMBERS.items():
            method = getattr(self, f"sys_{name}", None)
            if method is not None:
                self.table[number] = method

    def close(self) -> None:
        for host in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(host)
        self.fds.clear()

    # -- helpers --------------------------------------------------------
    def _host_fd(self, fd: int) -> int:
        host = self.fds.get(fd & 0xFFFFFFFF)
        if host is None:
            raise OSError(errno.EBADF, "bad file descriptor")
        return host

    def _new_fd(self, host: int, lowest: int = 0, cloexec: bool = False) -> int:
        fd = lowest
        fds = self.fds
        while fd in fds:
            fd += 1
        fds[fd] = host
        if cloexec:
            self.cloexec.add(fd)
        else:
            self.cloexec.discard(fd)
        return fd

    def _path(self, address: int) -> str:
        raw = self.space.read_cstring(address)
        if raw is None:
            raise OSError(errno.EFAULT, "bad address")
        return os.fsdecode(raw)

    def _resolve(self, dirfd: int, address: int, *, empty_ok: bool = False) -> tuple[str, int]:
        """``(path, host dir fd or AT_FDCWD)`` for ``dirfd`` and the path at
        ``address``; relative paths are taken from the guest's cwd."""
        path = self._path(address)
        if not path and not empty_ok:
            raise OSError(errno.ENOENT, "empty path")
        if path == "/proc/self/exe":
            return self.exe_path, AT_FDCWD
        if os.path.isabs(path):
            return path, AT_FDCWD
        if _is_cwd(dirfd):
            return os.path.join(self.cwd, path), AT_FDCWD
        return path, self._host_fd(dirfd)

    @staticmethod
    def _dir_fd(host_dirfd: int) -> int | None:
        return None if host_dirfd == AT_FDCWD else host_dirfd

    def _write_out(self, address: int, data: bytes) -> int:
        return 0 if self.space.write(address, data) else -errno.EFAULT

    def _iovecs(self, address: int, count: int, write: bool) -> list[memoryview] | None:
        if count < 0 or count > 1024:
            raise OSError(errno.EINVAL, "bad iovec count")
        raw = self.space.read(address, 16 * count)
        if raw is None:
            return None
        pieces: list[memoryview] = []
        for index in range(count):
            base, length = _IOVEC.unpack_from(raw, 16 * index)
            if length:
                views = self.space.views(base, length, write=write)
                if views is None:
                    return None
                pieces += views
        return pieces

    # -- files ----------------------------------------------------------
    def sys_read(self, fd: int, buf: int, count: int, *_: int) -> int:
        host = self._host_fd(fd)
        views = self.space.views(buf, count, write=True)
        if views is None:
            return -errno.EFAULT
        return os.readv(host, views)

    def sys_write(self, fd: int, buf: int, count: int, *_: int) -> int:
        host = self._host_fd(fd)
        views = self.space.views(buf, count)
        if views is None:
            return -errno.EFAULT
        if len(views) == 1:
            return os.write(host, views[0])
        return os.writev(host, views)

    def sys_readv(self, fd: int, iov: int, count: int, *_: int) -> int:
        host = self._host_fd(fd)
        views = self._iovecs(iov, count, write=True)
        if views is None:
            return -errno.EFAULT
        return os.readv(host, views) if views else 0

    def sys_writev(self, fd: int, iov: int, count: int, *_: int) -> int:
        host = self._host_fd(fd)
        views = self._iovecs(iov, count, write=False)
        if views is None:
            return -errno.EFAULT
        return os.writev(host, views) if views else 0

    def sys_pread64(self, fd: int, buf: int, count: int, offset: int, *_: int) -> int:
        host = self._host_fd(fd)
        views = self.space.views(buf, count, write=True)
        if views is None:
            return -errno.EFAULT
        return os.preadv(host, views, offset)

    def sys_pwrite64(self, fd: int, buf: int, count: int, offset: int, *_: int) -> int:
        host = self._host_fd(fd)
        views = self.space.views(buf, count)
        if views is None:
            return -errno.EFAULT
        return os.pwritev(host, views, offset)

    def sys_openat(self, dirfd: int, path: int, flags: int, mode: int, *_: int) -> int:
        name, host_dir = self._resolve(dirfd, path)
        flags &= 0xFFFFFFFF  # an int in the kernel; mode keeps its permission bits
        host = os.open(name, flags | O_CLOEXEC, mode & 0o7777, dir_fd=self._dir_fd(host_dir))
        return self._new_fd(host, cloexec=bool(flags & O_CLOEXEC))

    def sys_open(self, path: int, flags: int, mode: int, *_: int) -> int:
        return self.sys_openat(AT_FDCWD, path, flags, mode, 0, 0)

    def sys_creat(self, path: int, mode: int, *_: int) -> int:
        return self.sys_openat(AT_FDCWD, path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode, 0, 0)

    def sys_close(self, fd: int, *_: int) -> int:
        host = self.fds.pop(fd, None)
        if host is None:
            return -errno.EBADF
        self.cloexec.discard(fd)
        os.close(host)
        return 0

    def sys_lseek(self, fd: int, offset: int, whence: int, *_: int) -> int:
        if offset >= 1 << 63:
            offset -= 1 << 64
        return os.lseek(self._host_fd(fd), offset, whence)

    def _stat_result(self, result: os.stat_result, address: int) -> int:
        data = _STAT.pack(
            result.st_dev, result.st_ino, result.st_nlink, result.st_mode,
            result.st_uid, result.st_gid, 0, result.st_rdev, result.st_size,
            result.st_blksize, result.st_blocks,
            int(result.st_atime_ns // 10**9), int(result.st_atime_ns % 10**9),
            int(result.st_mtime_ns // 10**9), int(result.st_mtime_ns % 10**9),
            int(result.st_ctime_ns // 10**9), int(result.st_ctime_ns % 10**9),
        )
        return self._write_out(address, data)

    def sys_fstat(self, fd: int, statbuf: int, *_: int) -> int:
        return self._stat_result(os.fstat(self._host_fd(fd)), statbuf)

    def _stat_at(self, dirfd: int, path: int, flags: int) -> os.stat_result | int:
        """fstatat's lookup: the result, or a negative errno."""
        if flags & AT_EMPTY_PATH:
            raw = self.space.read_cstring(path)
            if raw is None:
                return -errno.EFAULT
            if not raw:
                if _is_cwd(dirfd):
                    return os.stat(self.cwd)
                return os.fstat(self._host_fd(dirfd))
        name, host_dir = self._resolve(dirfd, path)
        return os.stat(
            name, dir_fd=self._dir_fd(host_dir),
            follow_symlinks=not flags & AT_SYMLINK_NOFOLLOW,
        )

    def sys_newfstatat(self, dirfd: int, path: int, statbuf: int, flags: int, *_: int) -> int:
        result = self._stat_at(dirfd, path, flags)
        return result if isinstance(result, int) else self._stat_result(result, statbuf)

    def sys_stat(self, path: int, statbuf: int, *_: int) -> int:
        return self.sys_newfstatat(AT_FDCWD, path, statbuf, 0, 0, 0)

    def sys_lstat(self, path: int, statbuf: int, *_: int) -> int:
        return self.sys_newfstatat(AT_FDCWD, path, statbuf, AT_SYMLINK_NOFOLLOW, 0, 0)

    def sys_statx(self, dirfd: int, path: int, flags: int, _mask: int, buffer: int,
                  *_: int) -> int:
        result = self._stat_at(dirfd, path, flags & (AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
        if isinstance(result, int):
            return result
        data = bytearray(_STATX_SIZE)
        _STATX.pack_into(
            data, 0, STATX_BASIC_STATS, result.st_blksize, 0, result.st_nlink,
            result.st_uid, result.st_gid, result.st_mode, result.st_ino, result.st_size,
            result.st_blocks, 0,
            *_timestamp(result.st_atime_ns), 0, 0, *_timestamp(result.st_ctime_ns),
            *_timestamp(result.st_mtime_ns),
            os.major(result.st_rdev), os.minor(result.st_rdev),
            os.major(result.st_dev), os.minor(result.st_dev),
        )
        return self._write_out(buffer, bytes(data))

    def sys_dup(self, fd: int, *_: int) -> int:
        return self._new_fd(os.dup(self._host_fd(fd)))

    def sys_dup3(self, old: int, new: int, flags: int, *_: int) -> int:
        host = self._host_fd(old)
        if old == new:
            return -errno.EINVAL
        if new < 0 or new >= 1 << 20:
            return -errno.EBADF
        duplicate = os.dup(host)
        previous = self.fds.pop(new, None)
        if previous is not None:
            os.close(previous)
        self.fds[new] = duplicate
        if flags & O_CLOEXEC:
            self.cloexec.add(new)
        else:
            self.cloexec.discard(new)
        return new

    def sys_dup2(self, old: int, new: int, *_: int) -> int:
        if old == new:
            self._host_fd(old)
            return new
        return self.sys_dup3(old, new, 0, 0, 0, 0)

    def sys_fcntl(self, fd: int, command: int, arg: int, *_: int) -> int:
        host = self._host_fd(fd)
        if command in (F_DUPFD, F_DUPFD_CLOEXEC):
            return self._new_fd(os.dup(host), arg, cloexec=command == F_DUPFD_CLOEXEC)
        if command == F_GETFD:
            return FD_CLOEXEC if fd in self.cloexec else 0
        if command == F_SETFD:
            if arg & FD_CLOEXEC:
                self.cloexec.add(fd)
            else:
                self.cloexec.discard(fd)
            return 0
        if command in (F_GETFL, F_SETFL):
            return fcntl.fcntl(host, command, arg)
        return -errno.EINVAL

    def sys_ioctl(self, fd: int, request: int, arg: int, *_: int) -> int:
        host = self._host_fd(fd)
        size = {TCGETS: 36, TIOCGWINSZ: 8}.get(request)
        if size is None:
            return -errno.ENOTTY
        data = fcntl.ioctl(host, request, bytes(size))
        return self._write_out(arg, data)

    def sys_getdents64(self, fd: int, dirp: int, count: int, *_: int) -> int:
        host = self._host_fd(fd)
        count = min(count, 1 << 20)
        buffer = ctypes.create_string_buffer(count)
        done = _libc.syscall(_SYS_GETDENTS64, host, buffer, count)
        if done < 0:
            return -ctypes.get_errno()
        return done if self.space.write(dirp, buffer.raw[:done]) else -errno.EFAULT

    def sys_readlinkat(self, dirfd: int, path: int, buf: int, size: int, *_: int) -> int:
        raw = self.space.read_cstring(path)
        if raw is None:
            return -errno.EFAULT
        if raw == b"/proc/self/exe":
            target = os.fsencode(self.exe_path)
        else:
            name, host_dir = self._resolve(dirfd, path)
            target = os.fsencode(os.readlink(name, dir_fd=self._dir_fd(host_dir)))
        target = target[: max(size, 0)]
        return len(target) if self.space.write(buf, target) else -errno.EFAULT

    def sys_readlink(self, path: int, buf: int, size: int, *_: int) -> int:
        return self.sys_readlinkat(AT_FDCWD, path, buf, size, 0, 0)

    def sys_faccessat(self, dirfd: int, path: int, mode: int, *_: int) -> int:
        name, host_dir = self._resolve(dirfd, path)
        dir_fd = self._dir_fd(host_dir)
        os.stat(name, dir_fd=dir_fd)  # ENOENT and friends
        return 0 if os.access(name, mode, dir_fd=dir_fd) else -errno.EACCES

    def sys_faccessat2(self, dirfd: int, path: int, mode: int, *_: int) -> int:
        return self.sys_faccessat(dirfd, path, mode, 0, 0, 0)

    def sys_access(self, path: int, mode: int, *_: int) -> int:
        return self.sys_faccessat(AT_FDCWD, path, mode, 0, 0, 0)

    def sys_unlinkat(self, dirfd: int, path: int, flags: int, *_: int) -> int:
        name, host_dir = self._resolve(dirfd, path)
        if flags & AT_REMOVEDIR:
            os.rmdir(name, dir_fd=self._dir_fd(host_dir))
        else:
            os.unlink(name, dir_fd=self._dir_fd(host_dir))
        return 0

    def sys_unlink(self, path: int, *_: int) -> int:
        return self.sys_unlinkat(AT_FDCWD, path, 0, 0, 0, 0)

    def sys_rmdir(self, path: int, *_: int) -> int:
        return self.sys_unlinkat(AT_FDCWD, path, AT_REMOVEDIR, 0, 0, 0)

    def sys_mkdirat(self, dirfd: int, path: int, mode: int, *_: int) -> int:
        name, host_dir = self._resolve(dirfd, path)
        os.mkdir(name, mode, dir_fd=self._dir_fd(host_dir))
        return 0

    def sys_mkdir(self, path: int, mode: int, *_: int) -> int:
        return self.sys_mkdirat(AT_FDCWD, path, mode, 0, 0, 0)

    def sys_renameat2(self, olddir: int, old: int, newdir: int, new: int, flags: int,
                      *_: int) -> int:
        if flags:
            return -errno.EINVAL
        old_name, old_dir = self._resolve(olddir, old)
        new_name, new_dir = self._resolve(newdir, new)
        os.rename(old_name, new_name, src_dir_fd=self._dir_fd(old_dir),
                  dst_dir_fd=self._dir_fd(new_dir))
        return 0

    def sys_renameat(self, olddir: int, old: int, newdir: int, new: int, *_: int) -> int:
        return self.sys_renameat2(olddir, old, newdir, new, 0, 0)

    def sys_rename(self, old: int, new: int, *_: int) -> int:
        return self.sys_renameat2(AT_FDCWD, old, AT_FDCWD, new, 0, 0)

    def sys_chdir(self, path: int, *_: int) -> int:
        name, _dir = self._resolve(AT_FDCWD, path)
        if not os.path.isdir(name):
            os.stat(name)
            return -errno.ENOTDIR
        self.cwd = os.path.normpath(name)
        return 0

    def sys_fchdir(self, fd: int, *_: int) -> int:
        self.cwd = os.readlink(f"/proc/self/fd/{self._host_fd(fd)}")
        return 0

    def sys_getcwd(self, buf: int, size: int, *_: int) -> int:
        data = os.fsencode(self.cwd) + b"\0"
        if len(data) > size:
            return -errno.ERANGE
        return len(data) if self.space.write(buf, data) else -errno.EFAULT

    def sys_umask(self, mask: int, *_: int) -> int:
        return os.umask(mask & 0o777)

    # -- memory ---------------------------------------------------------
    def sys_brk(self, address: int, *_: int) -> int:
        if address < self.brk_start:
            return self.brk_end
        old_top = (self.brk_end + PAGE_MASK) & ~PAGE_MASK
        new_top = (address + PAGE_MASK) & ~PAGE_MASK
        try:
            if new_top > old_top:
                if not self.space.is_free(old_top, new_top - old_top):
                    return self.brk_end
                self.space.map_anonymous(old_top, new_top - old_top, writable=True)
            elif new_top < old_top:
                self.space.unmap(new_top, old_top - new_top)
        except OutOfGuestMemoryError:
            return self.brk_end
        self.brk_end = address
        return address

    def sys_mmap(self, address: int, length: int, prot: int, flags: int, fd: int,
                 offset: int) -> int:
        if length == 0 or length > USER_END:
            return -errno.EINVAL
        if address & PAGE_MASK or offset & PAGE_MASK:
            return -errno.EINVAL
        size = (length + PAGE_MASK) & ~PAGE_MASK
        anonymous = bool(flags & MAP_ANONYMOUS)
        data = b""
        if not anonymous:
            if flags & MAP_SHARED and prot & PROT_WRITE:
                return -errno.ENODEV  # shared writable file mappings need a page cache
            host = self._host_fd(fd)
            data = os.pread(host, length, offset)
        fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)
        if fixed:
            if address + size > USER_END:
                return -errno.ENOMEM
            if flags & MAP_FIXED_NOREPLACE and not self.space.is_free(address, size):
                return -errno.EEXIST
            start = address
        else:
            start = self._find_free(address, size)
            if start < 0:
                return -errno.ENOMEM
        try:
            self.space.map_anonymous(start, size, writable=bool(prot & PROT_WRITE),
                                     accessible=_accessible(prot))
        except OutOfGuestMemoryError:
            return -errno.ENOMEM
        if data:
            self.space.write_unchecked(start, data)
        return start

    def _find_free(self, hint: int, size: int) -> int:
        if hint and hint + size <= MMAP_TOP and self.space.is_free(hint, size):
            return hint
        start = self.mmap_next - size
        while start > self.brk_end + (1 << 30) and not self.space.is_free(start, size):
            start -= size
        if start <= self.brk_end:
            return -1
        self.mmap_next = start
        return start

    def sys_munmap(self, address: int, length: int, *_: int) -> int:
        if address & PAGE_MASK or length == 0 or address + length > USER_END:
            return -errno.EINVAL
        self.space.unmap(address, length)
        return 0

    def sys_mprotect(self, address: int, length: int, prot: int, *_: int) -> int:
        if address & PAGE_MASK:
            return -errno.EINVAL
        if length == 0:
            return 0
        ok = self.space.protect(address, length, writable=bool(prot & PROT_WRITE),
                                accessible=_accessible(prot))
        return 0 if ok else -errno.ENOMEM

    def sys_mremap(self, old: int, old_size: int, new_size: int, flags: int,
                   new_address: int, *_: int) -> int:
        if old & PAGE_MASK or new_size == 0 or flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED):
            return -errno.EINVAL
        if flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE:
            return -errno.EINVAL
        old_size = (old_size + PAGE_MASK) & ~PAGE_MASK
        new_size = (new_size + PAGE_MASK) & ~PAGE_MASK
        space = self.space
        if old_size == 0 or old + old_size > USER_END or not space.is_mapped(old, old_size):
            return -errno.EFAULT
        writable, accessible = space.protection(old)
        if flags & MREMAP_FIXED:
            if new_address & PAGE_MASK or new_address + new_size > USER_END:
                return -errno.EINVAL
            if new_address < old + old_size and old < new_address + new_size:
                return -errno.EINVAL  # the ranges overlap
            target = new_address
        elif new_size <= old_size:
            space.unmap(old + new_size, old_size - new_size)
            return old
        elif old + new_size <= USER_END and space.is_free(old + old_size, new_size - old_size):
            try:
                space.map_anonymous(old + old_size, new_size - old_size, writable=writable,
                                    accessible=accessible)
            except OutOfGuestMemoryError:
                return -errno.ENOMEM
            return old
        elif not flags & MREMAP_MAYMOVE:
            return -errno.ENOMEM
        else:
            target = self._find_free(0, new_size)
            if target < 0:
                return -errno.ENOMEM
        kept = min(old_size, new_size)
        space.unmap(target, new_size)  # MREMAP_FIXED replaces what was there
        space.move(old, target, kept)
        space.unmap(old, old_size)  # the part a shrink left behind
        if new_size > kept:
            try:
                space.map_anonymous(target + kept, new_size - kept, writable=writable,
                                    accessible=accessible)
            except OutOfGuestMemoryError:
                return -errno.ENOMEM
        return target

    def sys_madvise(self, *_: int) -> int:
        return 0

    # -- process --------------------------------------------------------
    def sys_exit_group(self, status: int, *_: int) -> int:
        raise ProcessExit(status & 0xFF)

    def sys_exit(self, status: int, *_: int) -> int:
        raise ProcessExit(status & 0xFF)

    def sys_getpid(self, *_: int) -> int:
        return os.getpid()

    def sys_gettid(self, *_: int) -> int:
        return os.getpid()

    def sys_getppid(self, *_: int) -> int:
        return os.getppid()

    def sys_getuid(self, *_: int) -> int:
        return os.getuid()

    def sys_geteuid(self, *_: int) -> int:
        return os.geteuid()

    def sys_getgid(self, *_: int) -> int:
        return os.getgid()

    def sys_getegid(self, *_: int) -> int:
        return os.getegid()

    def sys_getgroups(self, size: int, address: int, *_: int) -> int:
        groups = os.getgroups()
        size &= 0xFFFFFFFF
        if size == 0:
            return len(groups)
        if size < len(groups):
            return -errno.EINVAL
        data = struct.pack(f"<{len(groups)}I", *groups)
        return len(groups) if self.space.write(address, data) else -errno.EFAULT

    def sys_getpgrp(self, *_: int) -> int:
        return os.getpgrp()

    def sys_arch_prctl(self, code: int, address: int, *_: int) -> int:
        if code == ARCH_SET_FS:
            if address >= USER_END:
                return -errno.EPERM
            self.set_fs_base(address)
            return 0
        if code == ARCH_GET_FS:
            return self._write_out(address, _U64.pack(self.get_fs_base()))
        return -errno.EINVAL

    def sys_set_tid_address(self, address: int, *_: int) -> int:
        self.tid_address = address
        return os.getpid()

    def sys_set_robust_list(self, *_: int) -> int:
        return 0

    def sys_rseq(self, *_: int) -> int:
        return -errno.ENOSYS

    def sys_uname(self, buf: int, *_: int) -> int:
        host = os.uname()
        fields = (host.sysname, host.nodename, host.release, host.version, "x86_64", "(none)")
        data = b"".join(os.fsencode(field)[:64].ljust(65, b"\0") for field in fields)
        return self._write_out(buf, data)

    def sys_sysinfo(self, buf: int, *_: int) -> int:
        pages = os.sysconf("SC_PHYS_PAGES")
        free = os.sysconf("SC_AVPHYS_PAGES")
        page = os.sysconf("SC_PAGE_SIZE")
        load = [int(value * 65536) for value in os.getloadavg()]
        data = struct.pack(
            "<q3Q6QHHxxxxQQI",
            int(time.monotonic()), *load, pages * page, free * page, 0, 0, 0, 0,
            1, 0, 0, 0, 1,
        )
        return self._write_out(buf, data.ljust(112, b"\0"))

    def sys_prlimit64(self, pid: int, kind: int, new: int, old: int, *_: int) -> int:
        if old:
            soft, hard = resource.getrlimit(kind)
            data = struct.pack("<QQ", soft & 0xFFFF_FFFF_FFFF_FFFF, hard & 0xFFFF_FFFF_FFFF_FFFF)
            return self._write_out(old, data)
        return 0

    def sys_getrlimit(self, kind: int, old: int, *_: int) -> int:
        return self.sys_prlimit64(0, kind, 0, old, 0, 0)

    def sys_getrandom(self, buf: int, length: int, flags: int, *_: int) -> int:
        length = min(length, 1 << 25)
        return length if self.space.write(buf, os.urandom(length)) else -errno.EFAULT

    def sys_clock_gettime(self, clock: int, address: int, *_: int) -> int:
        now = time.clock_gettime_ns(clock)
        return self._write_out(address, _TIMESPEC.pack(now // 10**9, now % 10**9))

    def sys_clock_getres(self, clock: int, address: int, *_: int) -> int:
        if address:
            return self._write_out(address, _TIMESPEC.pack(0, 1))
        return 0

    def sys_gettimeofday(self, tv: int, tz: int, *_: int) -> int:
        now = time.time_ns()
        if tv:
            return self._write_out(tv, _TIMESPEC.pack(now // 10**9, now % 10**9 // 1000))
        return 0

    def sys_time(self, address: int, *_: int) -> int:
        now = int(time.time())
        if address and not self.space.write(address, _U64.pack(now)):
            return -errno.EFAULT
        return now

    def _wait(self, seconds: float) -> float:
        """Sleep ``seconds``; what is left of them when a host signal for the
        guest (SIGINT...) came first, so the guest sees EINTR as on Linux."""
        signals = self.signals
        signals.wakeup.clear()
        if signals.pending & ~signals.mask:
            return seconds
        deadline = time.monotonic() + seconds
        if signals.wakeup.wait(seconds):
            return max(deadline - time.monotonic(), 0.0)
        return 0.0

    def _sleep(self, request: int, remaining: int = 0) -> int:
        raw = self.space.read(request, 16)
        if raw is None:
            return -errno.EFAULT
        seconds, nanoseconds = _TIMESPEC.unpack(raw)
        if seconds < 0 or not 0 <= nanoseconds < 10**9:
            return -errno.EINVAL
        left = self._wait(seconds + nanoseconds / 1e9)
        if not left:
            return 0
        if remaining:
            whole = int(left)
            self.space.write(remaining, _TIMESPEC.pack(whole, int((left - whole) * 1e9)))
        return -errno.EINTR

    def sys_nanosleep(self, request: int, remaining: int, *_: int) -> int:
        return self._sleep(request, remaining)

    def sys_clock_nanosleep(self, clock: int, flags: int, request: int, remaining: int,
                            *_: int) -> int:
        if flags & 1:  # TIMER_ABSTIME
            raw = self.space.read(request, 16)
            if raw is None:
                return -errno.EFAULT
            seconds, nanoseconds = _TIMESPEC.unpack(raw)
            delay = seconds * 10**9 + nanoseconds - time.clock_gettime_ns(clock)
            return -errno.EINTR if self._wait(max(delay, 0) / 1e9) else 0
        return self._sleep(request, remaining)

    def sys_rt_sigaction(self, signum: int, act: int, oldact: int, size: int, *_: int) -> int:
        if not 1 <= signum <= 64 or size != 8:
            return -errno.EINVAL
        signals = self.signals
        if oldact and not self.space.write(oldact, signals.actions.get(signum, bytes(32))):
            return -errno.EFAULT
        if act:
            raw = self.space.read(act, 32)
            if raw is None:
                return -errno.EFAULT
            if signum in (SIGKILL, SIGSTOP):
                return -errno.EINVAL
            signals.set_action(signum, raw)
        return 0

    def sys_rt_sigprocmask(self, how: int, new: int, old: int, size: int, *_: int) -> int:
        if size != 8:
            return -errno.EINVAL
        signals = self.signals
        if old and not self.space.write(old, _U64.pack(signals.mask)):
            return -errno.EFAULT
        if new:
            value = self.space.read_u64(new)
            if value is None:
                return -errno.EFAULT
            if how == 0:
                signals.mask |= value
            elif how == 1:
                signals.mask &= ~value
            elif how == 2:
                signals.mask = value
            else:
                return -errno.EINVAL
            signals.mask &= ~UNBLOCKABLE
        return 0

    def sys_rt_sigsuspend(self, address: int, size: int, *_: int) -> int:
        """Wait with ``mask`` for a signal the program handles. A child's exit
        is seen by polling (busybox sh's ``wait`` waits here for SIGCHLD)."""
        if size != 8:
            return -errno.EINVAL
        value = self.space.read_u64(address)
        if value is None:
            return -errno.EFAULT
        signals = self.signals
        old, signals.mask = signals.mask, value & ~UNBLOCKABLE
        while not signals.pending & ~signals.mask:
            handler = signals.action(SIGCHLD)[0]
            if handler not in (SIG_DFL, SIG_IGN) and _a_child_exited():
                signals.raise_signal(SignalInfo(SIGCHLD, CLD_EXITED))
                continue
            signals.wakeup.clear()
            signals.wakeup.wait(0.005)
        signals.suspended_mask = old  # the handler's frame saves it
        return -errno.EINTR

    def sys_rt_sigpending(self, address: int, size: int, *_: int) -> int:
        pending = self.signals.pending & self.signals.mask
        return self._write_out(address, _U64.pack(pending))

    def sys_sigaltstack(self, new: int, old: int, *_: int) -> int:
        if old and not self.space.write(old, struct.pack("<QiiQ", 0, SS_DISABLE, 0, 0)):
            return -errno.EFAULT
        return -errno.ENOSYS if new else 0

    # -- pipes, children, signals to processes ------------------------------
    def sys_pipe2(self, address: int, flags: int, *_: int) -> int:
        if flags & ~(O_CLOEXEC | os.O_NONBLOCK | os.O_DIRECT):
            return -errno.EINVAL
        if not self.space.views(address, 8, write=True):
            return -errno.EFAULT
        reader, writer = os.pipe2((flags & ~O_CLOEXEC) | O_CLOEXEC)
        cloexec = bool(flags & O_CLOEXEC)
        fds = (self._new_fd(reader, cloexec=cloexec), self._new_fd(writer, cloexec=cloexec))
        return self._write_out(address, struct.pack("<ii", *fds))

    def sys_pipe(self, address: int, *_: int) -> int:
        return self.sys_pipe2(address, 0, 0, 0, 0, 0)

    def sys_wait4(self, pid: int, status: int, options: int, rusage: int, *_: int) -> int:
        pid = _signed32(pid)
        if options & ~(WNOHANG | WUNTRACED | WCONTINUED | WALL_FLAGS):
            return -errno.EINVAL
        child, code, usage = os.wait4(pid, options & (WNOHANG | WUNTRACED | WCONTINUED))
        if child == 0:
            return 0
        if status and not self.space.write(status, struct.pack("<i", code)):
            return -errno.EFAULT
        if rusage:
            times = (int(usage.ru_utime), int(usage.ru_utime % 1 * 1e6),
                     int(usage.ru_stime), int(usage.ru_stime % 1 * 1e6))
            data = struct.pack("<4q", *times) + struct.pack("<q", usage.ru_maxrss)
            if not self.space.write(rusage, data.ljust(144, b"\0")):
                return -errno.EFAULT
        return child

    def sys_kill(self, pid: int, signum: int, *_: int) -> int:
        pid, signum = _signed32(pid), _signed32(signum)
        if not 0 <= signum <= 64:
            return -errno.EINVAL
        me = os.getpid()
        if pid == me:
            if signum:
                self.signals.raise_signal(SignalInfo(signum, SI_USER, me | os.getuid() << 32))
            return 0
        # Others (a group with us in it too) through the host: the signals
        # forwarded to a guest come back to us as pending ones.
        os.kill(pid, signum)
        return 0

    def sys_tkill(self, tid: int, signum: int, *_: int) -> int:
        return self.sys_kill(tid, signum, 0, 0, 0, 0)

    def sys_tgkill(self, tgid: int, tid: int, signum: int, *_: int) -> int:
        return self.sys_kill(tid, signum, 0, 0, 0, 0)

    def exec_reset(self, space: AddressSpace, *, brk: int, exe_path: str) -> None:
        """execve: a new address space and program; close-on-exec fds closed,
        handlers reset."""
        self.space = space
        self.brk_start = self.brk_end = brk
        self.exe_path = exe_path
        self.mmap_next = MMAP_TOP
        for fd in sorted(self.cloexec):
            host = self.fds.pop(fd, None)
            if host is not None:
                with contextlib.suppress(OSError):
                    os.close(host)
        self.cloexec.clear()
        self.signals.reset_on_exec()
        self.tid_address = 0
        self.name = os.fsencode(os.path.basename(exe_path))[:15]

    def sys_sched_getaffinity(self, pid: int, size: int, mask: int, *_: int) -> int:
        if size < 8:
            return -errno.EINVAL
        return 8 if self.space.write(mask, _U64.pack(1)) else -errno.EFAULT

    def sys_sched_yield(self, *_: int) -> int:
        return 0

    def sys_prctl(self, option: int, arg: int, *_: int) -> int:
        if option == PR_SET_NAME:
            name = self.space.read_cstring(arg, 16)
            self.name = (name or b"")[:15]
            return 0 if name is not None else -errno.EFAULT
        if option == PR_GET_NAME:
            return self._write_out(arg, self.name.ljust(16, b"\0"))
        return -errno.EINVAL
