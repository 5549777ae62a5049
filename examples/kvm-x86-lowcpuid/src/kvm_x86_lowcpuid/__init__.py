"""kvm-x86-lowcpuid: an example kvmbase architecture plugin.

It registers the architecture ``x86-lowcpuid``: kvm_x86's x86-64 machine
with a smaller CPUID model (max basic leaf 7, its own brand string, no AVX
where the host lets it be hidden) and a POST-code port (0x80) whose writes
the plugin records instead of sending them to the bus.
"""

__version__ = "0.1.0"
