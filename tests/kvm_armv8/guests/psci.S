/* psci.S: PSCI SYSTEM_OFF, or SYSTEM_RESET with RESET defined to 1. */
        .include "common.inc"
        .globl  _start
_start:
        .ifdef RESET
        psci_call PSCI_SYSTEM_RESET
        .else
        psci_call PSCI_SYSTEM_OFF
        .endif
        b       .
        .ltorg
