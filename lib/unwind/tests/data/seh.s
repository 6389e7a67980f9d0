# Functions whose prologues, epilogues and unwind data lib/unwind's tests
# unwind (tests/data/build.sh assembles and links this into seh.dll with
# MinGW-w64's binutils: the .seh_* directives make GNU as write .pdata and
# .xdata as Windows compilers do). AT&T syntax.
        .text

# push rbx; push rsi; sub rsp, 0x28 / add rsp, 0x28; pop rsi; pop rbx; ret
        .globl f_push
        .def f_push; .scl 2; .type 32; .endef
        .seh_proc f_push
f_push:
        pushq %rbx
        .seh_pushreg %rbx
        pushq %rsi
        .seh_pushreg %rsi
        subq $0x28, %rsp
        .seh_stackalloc 0x28
        .seh_endprologue
        callq *%rcx
        nop
        addq $0x28, %rsp
        popq %rsi
        popq %rbx
        ret
        .seh_endproc

# A frame pointer (rbp = rsp + 0x20), a 16-bit ALLOC_LARGE, xmm6 and r12
# saved with mov; the epilogue restores rsp with lea.
        .globl f_frame
        .def f_frame; .scl 2; .type 32; .endef
        .seh_proc f_frame
f_frame:
        pushq %rbp
        .seh_pushreg %rbp
        pushq %rdi
        .seh_pushreg %rdi
        subq $0x1000, %rsp
        .seh_stackalloc 0x1000
        leaq 0x20(%rsp), %rbp
        .seh_setframe %rbp, 0x20
        movaps %xmm6, 0x30(%rsp)
        .seh_savexmm %xmm6, 0x30
        movq %r12, 0x40(%rsp)
        .seh_savereg %r12, 0x40
        .seh_endprologue
        callq *%rcx
        nop
        movaps 0x30(%rsp), %xmm6
        movq 0x40(%rsp), %r12
        leaq 0xFE0(%rbp), %rsp
        popq %rdi
        popq %rbp
        ret
        .seh_endproc

# A 32-bit ALLOC_LARGE and the _FAR saves; ends in a tail call.
        .globl f_huge
        .def f_huge; .scl 2; .type 32; .endef
        .seh_proc f_huge
f_huge:
        pushq %r13
        .seh_pushreg %r13
        subq $0x123450, %rsp
        .seh_stackalloc 0x123450
        movq %r14, 0x100000(%rsp)
        .seh_savereg %r14, 0x100000
        movaps %xmm7, 0x100010(%rsp)
        .seh_savexmm %xmm7, 0x100010
        .seh_endprologue
        callq *%rcx
        nop
        movq 0x100000(%rsp), %r14
        addq $0x123450, %rsp
        popq %r13
        jmp f_push
        .seh_endproc

# Entered with a machine frame (and an error code) at rsp, as an
# interrupt would leave it, then 0x40 bytes allocated.
        .globl f_machframe
        .def f_machframe; .scl 2; .type 32; .endef
        .seh_proc f_machframe
f_machframe:
        .seh_pushframe code
        subq $0x40, %rsp
        .seh_stackalloc 0x40
        .seh_endprologue
        callq *%rcx
        nop
        int3
        .seh_endproc

# __try { call rcx } __except(filter) { } around a termination scope, with
# __C_specific_handler as the language handler.
        .globl f_seh
        .def f_seh; .scl 2; .type 32; .endef
        .seh_proc f_seh
f_seh:
        subq $0x28, %rsp
        .seh_stackalloc 0x28
        .seh_endprologue
seh_try_begin:
        callq *%rcx
        nop
seh_inner_end:
        nop
seh_try_end:
        addq $0x28, %rsp
        ret
seh_except:
        xorl %eax, %eax
        addq $0x28, %rsp
        ret
        .seh_handler __C_specific_handler, @except, @unwind
        .seh_handlerdata
        .long 2
        .rva seh_try_begin, seh_inner_end, seh_finally
        .long 0
        .rva seh_try_begin, seh_try_end, seh_filter
        .rva seh_except
        .text
        .seh_endproc

        .globl seh_filter
seh_filter:
        movl $1, %eax
        ret
        .globl seh_finally
seh_finally:
        ret
        .globl __C_specific_handler
__C_specific_handler:
        ret

# A function split in two: f_split_cold continues f_split's frame
# (UNW_FLAG_CHAININFO), .pdata/.xdata written by hand.
        .globl f_split
f_split:
        pushq %rbx
        subq $0x20, %rsp
f_split_body:
        callq *%rcx
        jmp f_split_cold
f_split_end:
        .globl f_split_cold
f_split_cold:
        pushq %rsi
        subq $0x10, %rsp
f_split_cold_body:
        callq *%rcx
        nop
        addq $0x10, %rsp
        popq %rsi
        addq $0x20, %rsp
        popq %rbx
        ret
f_split_cold_end:

        .section .xdata,"dr"
        .p2align 2
f_split_xdata:
        .byte 1, f_split_body - f_split, 2, 0
        .byte f_split_body - f_split, 0x32      # UWOP_ALLOC_SMALL 0x20
        .byte 1, 0x30                           # UWOP_PUSH_NONVOL rbx
f_split_cold_xdata:
        .byte 1 | (4 << 3), f_split_cold_body - f_split_cold, 2, 0
        .byte f_split_cold_body - f_split_cold, 0x12   # UWOP_ALLOC_SMALL 0x10
        .byte 1, 0x60                           # UWOP_PUSH_NONVOL rsi
        .rva f_split, f_split_end, f_split_xdata
        .section .pdata,"dr"
        .rva f_split, f_split_end, f_split_xdata
        .rva f_split_cold, f_split_cold_end, f_split_cold_xdata
