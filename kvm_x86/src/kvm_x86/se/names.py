"""x86-64 Linux system call numbers and names."""

from __future__ import annotations

from typing import Final

_TABLE: Final = """
0 read 1 write 2 open 3 close 4 stat 5 fstat 6 lstat 7 poll 8 lseek 9 mmap 10 mprotect
11 munmap 12 brk 13 rt_sigaction 14 rt_sigprocmask 15 rt_sigreturn 16 ioctl 17 pread64
18 pwrite64 19 readv 20 writev 21 access 22 pipe 23 select 24 sched_yield 25 mremap
26 msync 27 mincore 28 madvise 29 shmget 30 shmat 31 shmctl 32 dup 33 dup2 34 pause
35 nanosleep 36 getitimer 37 alarm 38 setitimer 39 getpid 40 sendfile 41 socket 42 connect
43 accept 44 sendto 45 recvfrom 46 sendmsg 47 recvmsg 48 shutdown 49 bind 50 listen
51 getsockname 52 getpeername 53 socketpair 54 setsockopt 55 getsockopt 56 clone 57 fork
58 vfork 59 execve 60 exit 61 wait4 62 kill 63 uname 64 semget 65 semop 66 semctl 67 shmdt
68 msgget 69 msgsnd 70 msgrcv 71 msgctl 72 fcntl 73 flock 74 fsync 75 fdatasync 76 truncate
77 ftruncate 78 getdents 79 getcwd 80 chdir 81 fchdir 82 rename 83 mkdir 84 rmdir 85 creat
86 link 87 unlink 88 symlink 89 readlink 90 chmod 91 fchmod 92 chown 93 fchown 94 lchown
95 umask 96 gettimeofday 97 getrlimit 98 getrusage 99 sysinfo 100 times 101 ptrace
102 getuid 103 syslog 104 getgid 105 setuid 106 setgid 107 geteuid 108 getegid 109 setpgid
110 getppid 111 getpgrp 112 setsid 113 setreuid 114 setregid 115 getgroups 116 setgroups
117 setresuid 118 getresuid 119 setresgid 120 getresgid 121 getpgid 122 setfsuid
123 setfsgid 124 getsid 125 capget 126 capset 127 rt_sigpending 128 rt_sigtimedwait
129 rt_sigqueueinfo 130 rt_sigsuspend 131 sigaltstack 132 utime 133 mknod 135 personality
137 statfs 138 fstatfs 140 getpriority 141 setpriority 149 mlock 150 munlock 157 prctl
158 arch_prctl 160 setrlimit 161 chroot 162 sync 165 mount 166 umount2 170 sethostname
186 gettid 187 readahead 200 tkill 201 time 202 futex 203 sched_setaffinity
204 sched_getaffinity 213 epoll_create 217 getdents64 218 set_tid_address
219 restart_syscall 221 fadvise64 227 clock_settime 228 clock_gettime 229 clock_getres
230 clock_nanosleep 231 exit_group 232 epoll_wait 233 epoll_ctl 234 tgkill 235 utimes
247 waitid 257 openat 258 mkdirat 259 mknodat 260 fchownat 261 futimesat 262 newfstatat
263 unlinkat 264 renameat 265 linkat 266 symlinkat 267 readlinkat 268 fchmodat 269 faccessat
270 pselect6 271 ppoll 273 set_robust_list 274 get_robust_list 275 splice 280 utimensat
285 fallocate 288 accept4 290 eventfd2 291 epoll_create1 292 dup3 293 pipe2 302 prlimit64
316 renameat2 318 getrandom 319 memfd_create 322 execveat 326 copy_file_range 332 statx
334 rseq 435 clone3 436 close_range 437 openat2 439 faccessat2
"""

_words = _TABLE.split()
#: system call names by number
NAMES: Final[dict[int, str]] = {
    int(_words[i]): _words[i + 1] for i in range(0, len(_words), 2)
}
#: system call numbers by name
NUMBERS: Final[dict[str, int]] = {name: number for number, name in NAMES.items()}


def syscall_name(number: int) -> str:
    return NAMES.get(number, f"syscall_{number}")
