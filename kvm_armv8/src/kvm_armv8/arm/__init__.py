"""ARM code shared by kvm_armv8 (AArch64 guests) and kvm_arm (AArch32 guests).

Both plugins run on arm64 KVM hosts only: Linux dropped its 32-bit ARM host
KVM in 5.7, so an AArch32 guest today is a vCPU of arm64 KVM made with
``KVM_ARM_VCPU_EL1_32BIT``.  Everything about such a vCPU but its register
file is the same as for an AArch64 one, and lives here:

=================  ==========================================================
module             what
=================  ==========================================================
``regs``           ONE_REG ids: build, decode, name (core, sysreg, demux, fw)
``sysregs``        system register names by encoding
``abi``            arm64 ioctls and structs (vCPU init, reg list, IRQ lines)
``features``       the vCPU features a config asks for (PSCI 0.2, EL1 32-bit,
                   PMU) and their check against the host
``vcpu``           ``BaseArmKvmCPU``: init, register discovery,
                   ONE_REG sync of register sets, PSCI, interrupt lines
``irq``            the ``KVM_IRQ_LINE`` encoding
``gic``            the in-kernel GICv2/GICv3 and its state
``pl011``          a PL011-compatible UART
``psci``           PSCI function ids
=================  ==========================================================
"""
