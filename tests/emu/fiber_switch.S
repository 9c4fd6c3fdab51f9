// emu_fiber_switch(void** save_sp, void* load_sp) for the CUDA emulator's fibers (cuda_emu.h):
// pushes the callee-saved registers of the System V x86-64 ABI (rbp, rbx, r12-r15) and an 8-byte
// slot with MXCSR and the x87 control word, stores the stack pointer in *save_sp, switches to
// load_sp and pops the same from there (fiber_init in cuda_emu.h lays out a new fiber's stack so
// that this `ret` enters it). Caller-saved registers need no saving: this is an ordinary call.
//
// An assembler file, not asm in a C++ file: it stays a real symbol under LTO (GCC's LTO symbol
// tables omit top-level asm), and it carries no GNU property note, so a binary linked with it is
// not marked as shadow-stack compatible (these switches return across stacks, which a CET shadow
// stack would fault; C++ objects built with -fcf-protection claim it). Elsewhere (not x86-64) the
// emulator uses swapcontext and this file assembles to nothing.
#if defined(__x86_64__)
  .pushsection .text
  .globl emu_fiber_switch
  .type emu_fiber_switch, @function
  .p2align 4
emu_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_fiber_switch, .-emu_fiber_switch
  .popsection
#endif
  .section .note.GNU-stack,"",@progbits
