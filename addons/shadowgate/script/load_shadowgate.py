"""The script `shadowgate proxy` hands to mitmdump (-s): every addon, in pipeline order.

addons/shadowgate.py in a checkout is the same two lines; this copy ships in the wheel.
"""

from shadowgate.stages import default_addons

addons = default_addons()
