/*
 * exit_loop.c - C baseline of the KVM exit-loop benchmark, and a probe of the
 * privilege-switch instructions the host's KVM can run.
 *
 * Build:  gcc -O2 -Wall -o exit_loop exit_loop.c
 * Usage:  exit_loop [-i IMAGE] pio|mmio cpl0|cpl3 N     N exits (after 1 warm-up)
 *         exit_loop [-i IMAGE] compute cpl0|cpl3|native N   N xorshift rounds
 *         exit_loop [-i IMAGE] probe                    privilege-switch matrix
 * IMAGE defaults to exit_loops.bin next to this executable (guest image from
 * bench/guests/exit_loops.S; its entry offsets are documented there).
 *
 * Output: one line per run, e.g.
 *   kind=pio cpl=0 exits=N seconds=S us_per_exit=X
 *   kind=compute cpl=3 iters=N seconds=S ns_per_iter=X result=0x...
 * Errors go to stderr with exit status 1 (emulation failures show RIP and
 * the instruction bytes).
 *
 * Guest machine layout (host-built; the Python framework uses the same):
 *
 *   RAM          GPA 0 .. 16 MiB, one memory slot (slot 0).
 *   0x1000       PML4: [0] -> PDPT.
 *   0x2000       PDPT: [0] -> PD 0x3000, [1..3] -> PDs 0x9000, 0xA000, 0xB000.
 *   0x3000       PD for 0..1 GiB; PDs at 0x9000..0xB000 for 1..4 GiB.  The
 *                first 4 GiB are identity mapped with 2 MiB pages; every
 *                entry is Present|RW|User (PDEs also PS).  4 GiB rather than 1
 *                so that MMIO at 0xD0000000 (and LAPIC/IOAPIC) is mapped.
 *   0x4000       GDT, limit 0x47:
 *                  0x08 kernel code64 0x00af9b000000ffff
 *                  0x10 kernel data   0x00cf93000000ffff
 *                  0x18 user code32   0x00cffb000000ffff  (STAR sysret base)
 *                  0x20 user data     0x00cff3000000ffff
 *                  0x28 user code64   0x00affb000000ffff
 *                  0x30 user data     0x00cff3000000ffff  (sysexit SS)
 *                  0x38 64-bit TSS (16 bytes), base 0x6000, limit 0x2068, busy
 *   0x5000       IDT, 256 interrupt gates (limit 0xfff), selector 0x08; the
 *                handlers are the image's probe entries (0x80, 0x81 DPL 3).
 *   0x6000       TSS: RSP0 = 0x90000; I/O bitmap at 0x6068..0x8067, all
 *                ports allowed, 0xFF terminator at 0x8068.  (PVM does not
 *                keep RFLAGS.IOPL at CPL3, so CPL3 port I/O needs this.)
 *   0x80000      initial (and user) stack top.
 *   0x90000      kernel stack top (TSS.RSP0, SYSENTER_ESP).
 *   0x100000     guest image (code).
 *   0xD0000000   MMIO (no memory slot -> KVM_EXIT_MMIO).
 *
 *   CR0 = PE|MP|ET|NE|WP|PG (0x80050033), CR3 = 0x1000,
 *   CR4 = PAE|OSFXSR|OSXMMEXCPT (0x620), EFER = SCE|LME|LMA (0x501).
 *   CPL0: CS 0x08 (type 11, S, L, G, DPL 0), SS/DS/ES/FS/GS 0x10 (type 3,
 *   S, DB, G), RFLAGS 0x2.  CPL3: CS 0x2b DPL 3, SS/DS/ES/FS/GS 0x23 DPL 3,
 *   RFLAGS 0x3002 (IOPL 3 so that `out` works).  TR 0x38 (type 11), LDT
 *   unusable.  CPUID = KVM_GET_SUPPORTED_CPUID.  RSP = 0x80000.
 *   MSRs for the probes (KVM_SET_MSRS, or by the guest with wrmsr):
 *   STAR = 0x0018000800000000, LSTAR = image + 0x30, SFMASK = 0,
 *   SYSENTER_CS = 0x08, SYSENTER_ESP = 0x90000, SYSENTER_EIP = image + 0x38.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RAM_SIZE        (16UL << 20)
#define PML4_ADDR       0x1000UL
#define PDPT_ADDR       0x2000UL
#define PD0_ADDR        0x3000UL
#define GDT_ADDR        0x4000UL
#define IDT_ADDR        0x5000UL
#define TSS_ADDR        0x6000UL
#define TSS_LIMIT       0x2068UL        /* 0x68 + 8 KiB I/O bitmap */
#define PD1_ADDR        0x9000UL        /* PD1..PD3 at 0x9000, 0xA000, 0xB000 */
#define USER_STACK      0x80000UL
#define KERNEL_STACK    0x90000UL
#define IMAGE_ADDR      0x100000UL
#define MMIO_ADDR       0xD0000000UL

#define SEL_KCODE       0x08
#define SEL_KDATA       0x10
#define SEL_UCODE       0x2b
#define SEL_UDATA       0x23
#define SEL_TSS         0x38

#define CR0_VALUE       0x80050033UL
#define CR4_VALUE       0x620UL
#define EFER_VALUE      0x501UL
#define RFLAGS_CPL0     0x2UL
#define RFLAGS_CPL3     0x3002UL

/* Entry offsets in the image (see exit_loops.S). */
enum {
    E_PIO = 0x00, E_MMIO = 0x08, E_COMPUTE = 0x10, E_COMPUTE_CORE = 0x18,
    E_KERNEL_START = 0x20, E_USER_STAGE = 0x28, E_SYSCALL = 0x30,
    E_SYSENTER = 0x38, E_INT = 0x40, E_UD = 0x48, E_GP = 0x50, E_PF = 0x58,
    E_DF = 0x60, E_OTHER = 0x68,
};

enum { PORT_PIO = 0xe0, PORT_RESULT, PORT_REPORT, PORT_DONE, PORT_MARK,
       PORT_DATUM };

#define SEED            0x9e3779b97f4a7c15ULL

struct vm {
    int kvm, fd, vcpu;
    uint8_t *ram;
    struct kvm_run *run;
    size_t run_size;
};

static const char *image_path;
static uint8_t *image;
static size_t image_size;

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "exit_loop: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int xioctl(int fd, unsigned long req, void *arg, const char *what)
{
    int r = ioctl(fd, req, arg);

    if (r < 0)
        die("%s: %s", what, strerror(errno));
    return r;
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void load_image(void)
{
    FILE *f = fopen(image_path, "rb");

    if (!f)
        die("%s: %s", image_path, strerror(errno));
    image = malloc(1 << 20);
    image_size = fread(image, 1, 1 << 20, f);
    fclose(f);
    if (image_size < 0x70)
        die("%s: too small for a guest image", image_path);
}

/* ---- machine set-up -------------------------------------------------- */

static void put64(uint8_t *ram, uint64_t gpa, uint64_t v)
{
    memcpy(ram + gpa, &v, 8);
}

static void build_layout(uint8_t *ram)
{
    static const uint64_t gdt[] = {
        0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL,
        0x00cffb000000ffffULL, 0x00cff3000000ffffULL, 0x00affb000000ffffULL,
        0x00cff3000000ffffULL,
        0x00008b0000000000ULL | (TSS_ADDR << 16) | TSS_LIMIT, 0,
    };
    uint64_t pd[4] = { PD0_ADDR, PD1_ADDR, PD1_ADDR + 0x1000,
                       PD1_ADDR + 0x2000 };

    put64(ram, PML4_ADDR, PDPT_ADDR | 7);
    for (int g = 0; g < 4; g++) {
        put64(ram, PDPT_ADDR + 8 * g, pd[g] | 7);
        for (uint64_t i = 0; i < 512; i++)
            put64(ram, pd[g] + 8 * i, (((uint64_t)g << 30) + (i << 21)) | 0x87);
    }
    memcpy(ram + GDT_ADDR, gdt, sizeof(gdt));
    for (int v = 0; v < 256; v++) {
        int off = v == 6 ? E_UD : v == 8 ? E_DF : v == 13 ? E_GP :
                  v == 14 ? E_PF : v == 0x80 || v == 0x81 ? E_INT : E_OTHER;
        uint64_t h = IMAGE_ADDR + off;
        uint64_t lo = (h & 0xffff) | (uint64_t)SEL_KCODE << 16 |
                      (uint64_t)(v >= 0x80 && v <= 0x81 ? 0xee : 0x8e) << 40 |
                      (h >> 16 & 0xffff) << 48;

        put64(ram, IDT_ADDR + 16 * v, lo);
        put64(ram, IDT_ADDR + 16 * v + 8, h >> 32);
    }
    put64(ram, TSS_ADDR + 4, KERNEL_STACK);         /* RSP0 */
    ram[TSS_ADDR + 0x66] = 0x68;                     /* I/O bitmap base */
    ram[TSS_ADDR + TSS_LIMIT] = 0xff;                /* bitmap terminator */
    memcpy(ram + IMAGE_ADDR, image, image_size);
}

static void vm_create(struct vm *vm)
{
    struct kvm_userspace_memory_region region;
    struct kvm_cpuid2 *cpuid;
    int n = 256;

    vm->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm < 0)
        die("/dev/kvm: %s", strerror(errno));
    vm->fd = xioctl(vm->kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
    vm->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (vm->ram == MAP_FAILED)
        die("mmap RAM: %s", strerror(errno));
    region = (struct kvm_userspace_memory_region) {
        .slot = 0, .guest_phys_addr = 0, .memory_size = RAM_SIZE,
        .userspace_addr = (uintptr_t)vm->ram,
    };
    xioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region,
           "KVM_SET_USER_MEMORY_REGION");
    vm->vcpu = xioctl(vm->fd, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
    vm->run_size = xioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0,
                          "KVM_GET_VCPU_MMAP_SIZE");
    vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                   vm->vcpu, 0);
    if (vm->run == MAP_FAILED)
        die("mmap kvm_run: %s", strerror(errno));

    cpuid = calloc(1, sizeof(*cpuid) + n * sizeof(cpuid->entries[0]));
    cpuid->nent = n;
    xioctl(vm->kvm, KVM_GET_SUPPORTED_CPUID, cpuid, "KVM_GET_SUPPORTED_CPUID");
    xioctl(vm->vcpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
    free(cpuid);
    build_layout(vm->ram);
}

static void vm_destroy(struct vm *vm)
{
    munmap(vm->run, vm->run_size);
    munmap(vm->ram, RAM_SIZE);
    close(vm->vcpu);
    close(vm->fd);
    close(vm->kvm);
}

static struct kvm_segment segment(uint16_t sel, int code)
{
    return (struct kvm_segment) {
        .base = 0, .limit = 0xffffffff, .selector = sel,
        .type = code ? 11 : 3, .present = 1, .dpl = sel & 3, .s = 1,
        .l = code, .db = !code, .g = 1,
    };
}

/* Long mode at `cpl` (0 or 3), RIP = image + entry; other regs from *regs. */
static void vcpu_start(struct vm *vm, int cpl, int entry,
                       struct kvm_regs *regs)
{
    struct kvm_sregs s;
    struct kvm_segment data = segment(cpl ? SEL_UDATA : SEL_KDATA, 0);

    xioctl(vm->vcpu, KVM_GET_SREGS, &s, "KVM_GET_SREGS");
    s.cs = segment(cpl ? SEL_UCODE : SEL_KCODE, 1);
    s.ds = s.es = s.fs = s.gs = s.ss = data;
    s.tr = (struct kvm_segment) {
        .base = TSS_ADDR, .limit = TSS_LIMIT, .selector = SEL_TSS, .type = 11,
        .present = 1,
    };
    s.ldt = (struct kvm_segment) { .type = 2, .unusable = 1 };
    s.gdt.base = GDT_ADDR;
    s.gdt.limit = 0x47;
    s.idt.base = IDT_ADDR;
    s.idt.limit = 0xfff;
    s.cr0 = CR0_VALUE;
    s.cr3 = PML4_ADDR;
    s.cr4 = CR4_VALUE;
    s.efer = EFER_VALUE;
    xioctl(vm->vcpu, KVM_SET_SREGS, &s, "KVM_SET_SREGS");

    regs->rip = IMAGE_ADDR + entry;
    regs->rsp = USER_STACK;
    regs->rflags = cpl ? RFLAGS_CPL3 : RFLAGS_CPL0;
    xioctl(vm->vcpu, KVM_SET_REGS, regs, "KVM_SET_REGS");
}

static void set_syscall_msrs(struct vm *vm)
{
    static const uint32_t idx[] = { 0xc0000081, 0xc0000082, 0xc0000084,
                                    0x174, 0x175, 0x176 };
    const uint64_t val[] = { 0x0018000800000000ULL, IMAGE_ADDR + E_SYSCALL,
                             0, SEL_KCODE, KERNEL_STACK,
                             IMAGE_ADDR + E_SYSENTER };
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e[6];
    } m = { .h.nmsrs = 6 };

    for (int i = 0; i < 6; i++) {
        m.e[i].index = idx[i];
        m.e[i].data = val[i];
    }
    if (ioctl(vm->vcpu, KVM_SET_MSRS, &m) != 6)
        die("KVM_SET_MSRS: only some MSRs set");
}

/* ---- running and describing exits ------------------------------------ */

static const char *exit_name(uint32_t r)
{
    switch (r) {
    case KVM_EXIT_IO: return "IO";
    case KVM_EXIT_MMIO: return "MMIO";
    case KVM_EXIT_HLT: return "HLT";
    case KVM_EXIT_SHUTDOWN: return "SHUTDOWN";
    case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
    case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
    default: return "OTHER";
    }
}

/* Write a one-line description of an unexpected exit into buf. */
static void describe_exit(struct vm *vm, char *buf, size_t len)
{
    struct kvm_run *r = vm->run;
    struct kvm_regs regs;
    struct kvm_sregs s;
    int n = snprintf(buf, len, "exit=%s(%u)", exit_name(r->exit_reason),
                     r->exit_reason);

    if (r->exit_reason == KVM_EXIT_INTERNAL_ERROR &&
        r->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
        r->emulation_failure.ndata >= 3 && (r->emulation_failure.flags &
        KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
        n += snprintf(buf + n, len - n, " suberror=1 (emulation) insn=");
        for (int i = 0; i < r->emulation_failure.insn_size && i < 15; i++)
            n += snprintf(buf + n, len - n, "%02x",
                          r->emulation_failure.insn_bytes[i]);
    } else if (r->exit_reason == KVM_EXIT_INTERNAL_ERROR) {
        n += snprintf(buf + n, len - n, " suberror=%u data=",
                      r->internal.suberror);
        for (unsigned i = 0; i < r->internal.ndata && i < 16; i++)
            n += snprintf(buf + n, len - n, "%s%llx", i ? "," : "",
                          (unsigned long long)r->internal.data[i]);
    } else if (r->exit_reason == KVM_EXIT_FAIL_ENTRY) {
        n += snprintf(buf + n, len - n, " reason=0x%llx",
                      (unsigned long long)
                      r->fail_entry.hardware_entry_failure_reason);
    }
    if (ioctl(vm->vcpu, KVM_GET_REGS, &regs) == 0 &&
        ioctl(vm->vcpu, KVM_GET_SREGS, &s) == 0) {
        n += snprintf(buf + n, len - n, " rip=0x%llx rflags=0x%llx cs=0x%x cpl=%d bytes=",
                      (unsigned long long)regs.rip, (unsigned long long)regs.rflags, s.cs.selector, s.cs.dpl);
        for (int i = 0; i < 15 && regs.rip + i < RAM_SIZE; i++)
            n += snprintf(buf + n, len - n, "%02x",
                          vm->ram[regs.rip + i]);
        if (regs.rip >= IMAGE_ADDR && regs.rip < IMAGE_ADDR + image_size)
            snprintf(buf + n, len - n, " (image+0x%llx)",
                     (unsigned long long)(regs.rip - IMAGE_ADDR));
    }
}

static void fail_exit(struct vm *vm, const char *what)
{
    char buf[512];

    describe_exit(vm, buf, sizeof(buf));
    die("%s: unexpected %s", what, buf);
}

static void vcpu_run(struct vm *vm)
{
    if (ioctl(vm->vcpu, KVM_RUN, 0) < 0)
        die("KVM_RUN: %s", strerror(errno));
}

static uint32_t io_value(struct kvm_run *r)
{
    uint32_t v = 0;

    memcpy(&v, (uint8_t *)r + r->io.data_offset,
           r->io.size < 4 ? r->io.size : 4);
    return v;
}

/* ---- benchmarks ------------------------------------------------------- */

static void bench_exits(int mmio, int cpl, long n)
{
    struct vm vm;
    struct kvm_regs regs = { 0 };
    struct kvm_run *r;
    double t0 = 0, dt;
    uint32_t last = 0;

    vm_create(&vm);
    r = vm.run;
    vcpu_start(&vm, cpl, mmio ? E_MMIO : E_PIO, &regs);
    for (long i = -1; i < n; i++) {             /* i == -1: warm-up exit */
        if (i == 0)
            t0 = now();
        vcpu_run(&vm);
        if (mmio) {
            if (r->exit_reason != KVM_EXIT_MMIO || !r->mmio.is_write ||
                r->mmio.phys_addr != MMIO_ADDR)
                fail_exit(&vm, "mmio loop");
        } else if (r->exit_reason != KVM_EXIT_IO ||
                   r->io.direction != KVM_EXIT_IO_OUT ||
                   r->io.port != PORT_PIO) {
            fail_exit(&vm, "pio loop");
        }
        last = mmio ? *(uint32_t *)r->mmio.data : io_value(r);
    }
    dt = now() - t0;
    if (last != (uint32_t)(n + 1))
        die("counter is %u after %ld exits, expected %ld", last, n + 1, n + 1);
    printf("kind=%s cpl=%d exits=%ld seconds=%.6f us_per_exit=%.3f\n",
           mmio ? "mmio" : "pio", cpl, n, dt, dt * 1e6 / n);
    vm_destroy(&vm);
}

typedef uint64_t (*compute_fn)(uint64_t iters, uint64_t seed);

/* Map the image RWX and return its compute_core (same bytes as the guest). */
static compute_fn native_compute(void)
{
    uint8_t *p = mmap(NULL, (image_size + 4095) & ~4095UL,
                      PROT_READ | PROT_WRITE | PROT_EXEC,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        die("mmap RWX: %s", strerror(errno));
    memcpy(p, image, image_size);
    return (compute_fn)(p + E_COMPUTE_CORE);
}

static double bench_native(long n, uint64_t *result)
{
    compute_fn f = native_compute();
    double t0 = now();

    *result = f(n, SEED);
    return now() - t0;
}

static void bench_compute(int cpl, long n)
{
    struct vm vm;
    struct kvm_regs regs = { .rdi = n, .rsi = SEED };
    uint64_t result;
    double t0, dt;

    if (cpl < 0) {
        dt = bench_native(n, &result);
    } else {
        vm_create(&vm);
        vcpu_start(&vm, cpl, E_COMPUTE, &regs);
        t0 = now();
        vcpu_run(&vm);
        dt = now() - t0;
        if (vm.run->exit_reason != KVM_EXIT_IO ||
            vm.run->io.port != PORT_RESULT)
            fail_exit(&vm, "compute loop");
        xioctl(vm.vcpu, KVM_GET_REGS, &regs, "KVM_GET_REGS");
        result = regs.rax;
        vm_destroy(&vm);
    }
    printf("kind=compute cpl=%s iters=%ld seconds=%.6f ns_per_iter=%.3f "
           "result=0x%016llx\n", cpl < 0 ? "native" : cpl ? "3" : "0", n, dt,
           dt * 1e9 / n, (unsigned long long)result);
}

/* ---- privilege-switch probes ----------------------------------------- */

enum { STEP_COMPUTE = 1, STEP_SYSCALL = 2, STEP_SYSCALL_LOOP = 4,
       STEP_INT80 = 8, STEP_UD2 = 16, STEP_SYSENTER = 32, STEP_INT81 = 64 };

static const char *const method_name[] = { "iretq", "sysretq", "sysexitq",
                                           "lretq" };
static const char *const tag_name[] = {
    "?", "user", "syscall", "sysenter", "int", "ud", "gp", "pf", "df",
    "other", "back",
};

#define PROBE_ITERS     200000L
#define PROBE_LOOP      1000L

static void on_alarm(int sig)
{
    (void)sig;
}

/*
 * One probe: fresh VM, start at `entry` with privilege `cpl`, `method` for
 * every CPL0 -> CPL3 transition, `guest_msrs` to let the guest wrmsr the
 * syscall MSRs (else KVM_SET_MSRS).  Prints the event log and a verdict.
 */
static void probe(const char *name, int cpl, int entry, int method,
                  int guest_msrs, int steps, double native_ns)
{
    struct vm vm;
    struct kvm_regs regs = {
        .rbx = steps, .rbp = guest_msrs, .r12 = PROBE_ITERS,
        .r13 = PROBE_LOOP, .r14 = method,
    };
    struct kvm_sregs s;
    char log[2048], buf[512];
    const char *verdict = "incomplete";
    double t0, tprev, tmark = 0;
    int n = 0;

    log[0] = 0;
    vm_create(&vm);
    if (!guest_msrs)
        set_syscall_msrs(&vm);
    vcpu_start(&vm, cpl, entry, &regs);
    t0 = tprev = now();
    alarm(5);
    for (int events = 0; events < 32; events++) {
        struct kvm_run *r = vm.run;
        double t;

        if (ioctl(vm.vcpu, KVM_RUN, 0) < 0) {
            verdict = errno == EINTR ? "timeout" : "kvm_run_error";
            break;
        }
        t = now();
        if (r->exit_reason != KVM_EXIT_IO) {
            describe_exit(&vm, buf, sizeof(buf));
            n += snprintf(log + n, sizeof(log) - n, "    %s\n", buf);
            verdict = r->exit_reason == KVM_EXIT_HLT ? "halted" :
                      r->exit_reason == KVM_EXIT_INTERNAL_ERROR ?
                      "internal_error" : exit_name(r->exit_reason);
            break;
        }
        uint32_t v = io_value(r);

        xioctl(vm.vcpu, KVM_GET_SREGS, &s, "KVM_GET_SREGS");
        n += snprintf(log + n, sizeof(log) - n, "    +%9.1f us ",
                      (t - t0) * 1e6);
        switch (r->io.port) {
        case PORT_REPORT:
            n += snprintf(log + n, sizeof(log) - n,
                          "report %-8s cs=0x%02x (sregs: cs.dpl=%d ss=0x%02x)\n",
                          tag_name[v >> 16 < 11 ? v >> 16 : 0], v & 0xffff,
                          s.cs.dpl, s.ss.selector);
            break;
        case PORT_RESULT:
            n += snprintf(log + n, sizeof(log) - n,
                          "compute %ld rounds: %.2f ns/round (native %.2f)"
                          " cpl=%d\n", PROBE_ITERS,
                          (t - tprev) * 1e9 / PROBE_ITERS, native_ns,
                          s.cs.dpl);
            break;
        case PORT_MARK:
            if (v == 1)
                n += snprintf(log + n, sizeof(log) - n,
                              "%ld syscalls: %.2f us per round trip\n",
                              PROBE_LOOP, (t - tmark) * 1e6 / PROBE_LOOP);
            else
                n += snprintf(log + n, sizeof(log) - n, "mark\n");
            tmark = t;
            break;
        case PORT_DONE:
            n += snprintf(log + n, sizeof(log) - n, "done\n");
            verdict = "ok";
            break;
        default:
            n += snprintf(log + n, sizeof(log) - n, "port 0x%x value 0x%x\n",
                          r->io.port, v);
        }
        tprev = t;
        if (r->io.port == PORT_DONE)
            break;
    }
    alarm(0);
    printf("probe=%s result=%s\n%s", name, verdict, log);
    fflush(stdout);
    vm_destroy(&vm);
}

static void probe_all(void)
{
    static const struct { const char *name; int bit; } steps[] = {
        { "syscall", STEP_SYSCALL }, { "sysenter", STEP_SYSENTER },
        { "int80", STEP_INT80 }, { "int81", STEP_INT81 },
        { "ud2", STEP_UD2 },
        { "syscall_loop", STEP_SYSCALL_LOOP },
    };
    struct sigaction sa = { .sa_handler = on_alarm };
    uint64_t result;
    double native_ns;
    char name[128];

    sigaction(SIGALRM, &sa, NULL);
    native_ns = bench_native(PROBE_ITERS, &result) * 1e9 / PROBE_ITERS;

    /* CPL0 -> CPL3 drops, then a compute loop to time where it runs. */
    for (int m = 0; m < 4; m++)
        for (int g = 0; g < 2; g++) {
            snprintf(name, sizeof(name), "drop_%s_%s_msrs", method_name[m],
                     g ? "guest" : "host");
            probe(name, 0, E_KERNEL_START, m, g, STEP_COMPUTE, native_ns);
        }
    /* CPL3 (set by KVM_SET_SREGS) -> CPL0 -> back with each method. */
    for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        for (int m = 0; m < 4; m++) {
            snprintf(name, sizeof(name), "cpl3_%s_return_%s", steps[i].name,
                     method_name[m]);
            probe(name, 3, E_USER_STAGE, m, 0, steps[i].bit, native_ns);
        }
}

/* ---- main ------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: exit_loop [-i IMAGE] pio|mmio cpl0|cpl3 N\n"
            "       exit_loop [-i IMAGE] compute cpl0|cpl3|native N\n"
            "       exit_loop [-i IMAGE] probe\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static char def[PATH_MAX];
    const char *kind;
    int cpl;
    long n;
    int opt;

    while ((opt = getopt(argc, argv, "i:")) != -1) {
        if (opt != 'i')
            usage();
        image_path = optarg;
    }
    if (!image_path) {
        ssize_t len = readlink("/proc/self/exe", def, sizeof(def) - 32);

        if (len < 0)
            die("readlink /proc/self/exe: %s", strerror(errno));
        def[len] = 0;
        strcpy(strrchr(def, '/') + 1, "exit_loops.bin");
        image_path = def;
    }
    load_image();
    argc -= optind;
    argv += optind;
    if (argc == 1 && !strcmp(argv[0], "probe")) {
        probe_all();
        return 0;
    }
    if (argc != 3)
        usage();
    kind = argv[0];
    if (!strcmp(argv[1], "cpl0"))
        cpl = 0;
    else if (!strcmp(argv[1], "cpl3"))
        cpl = 3;
    else if (!strcmp(argv[1], "native") && !strcmp(kind, "compute"))
        cpl = -1;
    else
        usage();
    n = strtol(argv[2], NULL, 0);
    if (n <= 0)
        usage();
    if (!strcmp(kind, "pio") || !strcmp(kind, "mmio"))
        bench_exits(kind[0] == 'm', cpl, n);
    else if (!strcmp(kind, "compute"))
        bench_compute(cpl, n);
    else
        usage();
    return 0;
}
