"""Names of the AArch64 system registers, by (op0, op1, CRn, CRm, op2).

The table holds the registers arm64 KVM lists for a vCPU (Linux 6.1 lists
157 of them), and the GICv3 CPU-interface registers, so that dumps and
errors can name them.  Encodings are those of the Arm ARM; note that KVM's
virtual-timer ids for CNTVCT_EL0 and CNTV_CVAL_EL0 are *not* these encodings
(see :data:`kvm_armv8.arm.regs.TIMER_IDS`).
"""

from __future__ import annotations

from typing import Final

Encoding = tuple[int, int, int, int, int]


def _table() -> dict[str, Encoding]:
    table: dict[str, Encoding] = {
        "MIDR_EL1": (3, 0, 0, 0, 0), "MPIDR_EL1": (3, 0, 0, 0, 5),
        "REVIDR_EL1": (3, 0, 0, 0, 6),
        "ID_PFR0_EL1": (3, 0, 0, 1, 0), "ID_PFR1_EL1": (3, 0, 0, 1, 1),
        "ID_DFR0_EL1": (3, 0, 0, 1, 2), "ID_AFR0_EL1": (3, 0, 0, 1, 3),
        "ID_MMFR0_EL1": (3, 0, 0, 1, 4), "ID_MMFR1_EL1": (3, 0, 0, 1, 5),
        "ID_MMFR2_EL1": (3, 0, 0, 1, 6), "ID_MMFR3_EL1": (3, 0, 0, 1, 7),
        "ID_ISAR0_EL1": (3, 0, 0, 2, 0), "ID_ISAR1_EL1": (3, 0, 0, 2, 1),
        "ID_ISAR2_EL1": (3, 0, 0, 2, 2), "ID_ISAR3_EL1": (3, 0, 0, 2, 3),
        "ID_ISAR4_EL1": (3, 0, 0, 2, 4), "ID_ISAR5_EL1": (3, 0, 0, 2, 5),
        "ID_MMFR4_EL1": (3, 0, 0, 2, 6), "ID_ISAR6_EL1": (3, 0, 0, 2, 7),
        "MVFR0_EL1": (3, 0, 0, 3, 0), "MVFR1_EL1": (3, 0, 0, 3, 1),
        "MVFR2_EL1": (3, 0, 0, 3, 2), "ID_PFR2_EL1": (3, 0, 0, 3, 4),
        "ID_DFR1_EL1": (3, 0, 0, 3, 5), "ID_MMFR5_EL1": (3, 0, 0, 3, 6),
        "ID_AA64PFR0_EL1": (3, 0, 0, 4, 0), "ID_AA64PFR1_EL1": (3, 0, 0, 4, 1),
        "ID_AA64ZFR0_EL1": (3, 0, 0, 4, 4), "ID_AA64SMFR0_EL1": (3, 0, 0, 4, 5),
        "ID_AA64DFR0_EL1": (3, 0, 0, 5, 0), "ID_AA64DFR1_EL1": (3, 0, 0, 5, 1),
        "ID_AA64AFR0_EL1": (3, 0, 0, 5, 4), "ID_AA64AFR1_EL1": (3, 0, 0, 5, 5),
        "ID_AA64ISAR0_EL1": (3, 0, 0, 6, 0), "ID_AA64ISAR1_EL1": (3, 0, 0, 6, 1),
        "ID_AA64ISAR2_EL1": (3, 0, 0, 6, 2),
        "ID_AA64MMFR0_EL1": (3, 0, 0, 7, 0), "ID_AA64MMFR1_EL1": (3, 0, 0, 7, 1),
        "ID_AA64MMFR2_EL1": (3, 0, 0, 7, 2),
        "SCTLR_EL1": (3, 0, 1, 0, 0), "ACTLR_EL1": (3, 0, 1, 0, 1),
        "CPACR_EL1": (3, 0, 1, 0, 2), "ZCR_EL1": (3, 0, 1, 2, 0),
        "TTBR0_EL1": (3, 0, 2, 0, 0), "TTBR1_EL1": (3, 0, 2, 0, 1),
        "TCR_EL1": (3, 0, 2, 0, 2),
        "APIAKEYLO_EL1": (3, 0, 2, 1, 0), "APIAKEYHI_EL1": (3, 0, 2, 1, 1),
        "APIBKEYLO_EL1": (3, 0, 2, 1, 2), "APIBKEYHI_EL1": (3, 0, 2, 1, 3),
        "APDAKEYLO_EL1": (3, 0, 2, 2, 0), "APDAKEYHI_EL1": (3, 0, 2, 2, 1),
        "APDBKEYLO_EL1": (3, 0, 2, 2, 2), "APDBKEYHI_EL1": (3, 0, 2, 2, 3),
        "APGAKEYLO_EL1": (3, 0, 2, 3, 0), "APGAKEYHI_EL1": (3, 0, 2, 3, 1),
        "ICC_PMR_EL1": (3, 0, 4, 6, 0),
        "AFSR0_EL1": (3, 0, 5, 1, 0), "AFSR1_EL1": (3, 0, 5, 1, 1),
        "ESR_EL1": (3, 0, 5, 2, 0), "ERRIDR_EL1": (3, 0, 5, 3, 0),
        "ERRSELR_EL1": (3, 0, 5, 3, 1),
        "FAR_EL1": (3, 0, 6, 0, 0), "PAR_EL1": (3, 0, 7, 4, 0),
        "PMINTENSET_EL1": (3, 0, 9, 14, 1), "PMINTENCLR_EL1": (3, 0, 9, 14, 2),
        "MAIR_EL1": (3, 0, 10, 2, 0), "AMAIR_EL1": (3, 0, 10, 3, 0),
        "LORSA_EL1": (3, 0, 10, 4, 0), "LOREA_EL1": (3, 0, 10, 4, 1),
        "LORN_EL1": (3, 0, 10, 4, 2), "LORC_EL1": (3, 0, 10, 4, 3),
        "LORID_EL1": (3, 0, 10, 4, 7),
        "VBAR_EL1": (3, 0, 12, 0, 0), "ISR_EL1": (3, 0, 12, 1, 0),
        "ICC_IAR0_EL1": (3, 0, 12, 8, 0), "ICC_EOIR0_EL1": (3, 0, 12, 8, 1),
        "ICC_HPPIR0_EL1": (3, 0, 12, 8, 2), "ICC_BPR0_EL1": (3, 0, 12, 8, 3),
        "ICC_DIR_EL1": (3, 0, 12, 11, 1), "ICC_RPR_EL1": (3, 0, 12, 11, 3),
        "ICC_SGI1R_EL1": (3, 0, 12, 11, 5), "ICC_ASGI1R_EL1": (3, 0, 12, 11, 6),
        "ICC_SGI0R_EL1": (3, 0, 12, 11, 7),
        "ICC_IAR1_EL1": (3, 0, 12, 12, 0), "ICC_EOIR1_EL1": (3, 0, 12, 12, 1),
        "ICC_HPPIR1_EL1": (3, 0, 12, 12, 2), "ICC_BPR1_EL1": (3, 0, 12, 12, 3),
        "ICC_CTLR_EL1": (3, 0, 12, 12, 4), "ICC_SRE_EL1": (3, 0, 12, 12, 5),
        "ICC_IGRPEN0_EL1": (3, 0, 12, 12, 6), "ICC_IGRPEN1_EL1": (3, 0, 12, 12, 7),
        "CONTEXTIDR_EL1": (3, 0, 13, 0, 1), "TPIDR_EL1": (3, 0, 13, 0, 4),
        "SCXTNUM_EL1": (3, 0, 13, 0, 7), "CNTKCTL_EL1": (3, 0, 14, 1, 0),
        "CCSIDR_EL1": (3, 1, 0, 0, 0), "CLIDR_EL1": (3, 1, 0, 0, 1),
        "AIDR_EL1": (3, 1, 0, 0, 7), "CSSELR_EL1": (3, 2, 0, 0, 0),
        "CTR_EL0": (3, 3, 0, 0, 1), "DCZID_EL0": (3, 3, 0, 0, 7),
        "PMCR_EL0": (3, 3, 9, 12, 0), "PMCNTENSET_EL0": (3, 3, 9, 12, 1),
        "PMCNTENCLR_EL0": (3, 3, 9, 12, 2), "PMOVSCLR_EL0": (3, 3, 9, 12, 3),
        "PMSWINC_EL0": (3, 3, 9, 12, 4), "PMSELR_EL0": (3, 3, 9, 12, 5),
        "PMCEID0_EL0": (3, 3, 9, 12, 6), "PMCEID1_EL0": (3, 3, 9, 12, 7),
        "PMCCNTR_EL0": (3, 3, 9, 13, 0), "PMXEVTYPER_EL0": (3, 3, 9, 13, 1),
        "PMXEVCNTR_EL0": (3, 3, 9, 13, 2), "PMUSERENR_EL0": (3, 3, 9, 14, 0),
        "PMOVSSET_EL0": (3, 3, 9, 14, 3),
        "TPIDR_EL0": (3, 3, 13, 0, 2), "TPIDRRO_EL0": (3, 3, 13, 0, 3),
        "SCXTNUM_EL0": (3, 3, 13, 0, 7),
        "CNTFRQ_EL0": (3, 3, 14, 0, 0), "CNTPCT_EL0": (3, 3, 14, 0, 1),
        "CNTVCT_EL0": (3, 3, 14, 0, 2),
        "CNTP_TVAL_EL0": (3, 3, 14, 2, 0), "CNTP_CTL_EL0": (3, 3, 14, 2, 1),
        "CNTP_CVAL_EL0": (3, 3, 14, 2, 2),
        "CNTV_TVAL_EL0": (3, 3, 14, 3, 0), "CNTV_CTL_EL0": (3, 3, 14, 3, 1),
        "CNTV_CVAL_EL0": (3, 3, 14, 3, 2),
        "PMCCFILTR_EL0": (3, 3, 14, 15, 7),
        "DACR32_EL2": (3, 4, 3, 0, 0), "IFSR32_EL2": (3, 4, 5, 0, 1),
        "FPEXC32_EL2": (3, 4, 5, 3, 0),
        "MDCCINT_EL1": (2, 0, 0, 2, 0), "MDSCR_EL1": (2, 0, 0, 2, 2),
        "MDRAR_EL1": (2, 0, 1, 0, 0), "OSLAR_EL1": (2, 0, 1, 0, 4),
        "OSLSR_EL1": (2, 0, 1, 1, 4), "OSDLR_EL1": (2, 0, 1, 3, 4),
        "DBGPRCR_EL1": (2, 0, 1, 4, 4), "DBGCLAIMSET_EL1": (2, 0, 7, 8, 6),
        "DBGCLAIMCLR_EL1": (2, 0, 7, 9, 6), "DBGAUTHSTATUS_EL1": (2, 0, 7, 14, 6),
        "MDCCSR_EL0": (2, 3, 0, 1, 0), "DBGDTR_EL0": (2, 3, 0, 4, 0),
        "DBGDTRRX_EL0": (2, 3, 0, 5, 0), "DBGVCR32_EL2": (2, 4, 0, 7, 0),
    }
    for n in range(4):
        table[f"ICC_AP0R{n}_EL1"] = (3, 0, 12, 8, 4 + n)
        table[f"ICC_AP1R{n}_EL1"] = (3, 0, 12, 9, n)
    for n in range(16):
        table[f"DBGBVR{n}_EL1"] = (2, 0, 0, n, 4)
        table[f"DBGBCR{n}_EL1"] = (2, 0, 0, n, 5)
        table[f"DBGWVR{n}_EL1"] = (2, 0, 0, n, 6)
        table[f"DBGWCR{n}_EL1"] = (2, 0, 0, n, 7)
    for n in range(31):
        table[f"PMEVCNTR{n}_EL0"] = (3, 3, 14, 8 + (n >> 3), n & 7)
        table[f"PMEVTYPER{n}_EL0"] = (3, 3, 14, 12 + (n >> 3), n & 7)
    return table


#: architectural name -> (op0, op1, CRn, CRm, op2)
SYSREGS: Final[dict[str, Encoding]] = _table()
#: (op0, op1, CRn, CRm, op2) -> architectural name
SYSREG_NAMES: Final[dict[Encoding, str]] = {enc: name for name, enc in SYSREGS.items()}
