//! Fault probes for the boot tests: each executes one faulting instruction
//! after storing its resume address in `KI_PROBE_RESUME`, so the trap
//! dispatcher records the fault and resumes instead of bugchecking.

core::arch::global_asm!(
    ".global KiProbeDivide",
    "KiProbeDivide:",
    "lea rax, [rip + 2f]",
    "mov [rip + KI_PROBE_RESUME], rax",
    "xor edx, edx",
    "mov eax, 1",
    "xor ecx, ecx",
    "div ecx",
    "2: ret",
    ".global KiProbeInvalidOpcode",
    "KiProbeInvalidOpcode:",
    "lea rax, [rip + 2f]",
    "mov [rip + KI_PROBE_RESUME], rax",
    "ud2",
    "2: ret",
    ".global KiProbeBreakpoint",
    "KiProbeBreakpoint:",
    "lea rax, [rip + 2f]",
    "mov [rip + KI_PROBE_RESUME], rax",
    "int3",
    "2: ret",
    // rcx = address to read.
    ".global KiProbeRead",
    "KiProbeRead:",
    "lea rax, [rip + 2f]",
    "mov [rip + KI_PROBE_RESUME], rax",
    "mov rax, [rcx]",
    "mov qword ptr [rip + KI_PROBE_RESUME], 0",
    "2: ret",
    // rcx = address to write.
    ".global KiProbeWrite",
    "KiProbeWrite:",
    "lea rax, [rip + 2f]",
    "mov [rip + KI_PROBE_RESUME], rax",
    "mov al, [rcx]",
    "mov [rcx], al",
    "mov qword ptr [rip + KI_PROBE_RESUME], 0",
    "2: ret",
    // rcx = unmapped stack pointer: the #PF cannot be delivered, so the CPU
    // raises #DF, which runs on IST1. Interrupts stay off while RSP is bad
    // (an interrupt taken on the way back from the #DF would fault again).
    ".global KiProbeDoubleFault",
    "KiProbeDoubleFault:",
    "pushfq",
    "cli",
    "lea rax, [rip + 2f]",
    "mov [rip + KI_PROBE_RESUME], rax",
    "mov [rip + KI_PROBE_RSP], rsp",
    "mov rsp, rcx",
    "push rax",
    "2: mov rsp, [rip + KI_PROBE_RSP]",
    "popfq",
    "ret",
);

extern "C" {
    pub fn KiProbeDivide();
    pub fn KiProbeInvalidOpcode();
    pub fn KiProbeBreakpoint();
    pub fn KiProbeRead(address: u64);
    pub fn KiProbeWrite(address: u64);
    pub fn KiProbeDoubleFault(bad_stack: u64);
}
