"""mitmdump -s addons/shadowgate.py: every shadowgate addon, in pipeline order.

mitmproxy puts this file's folder on sys.path while it loads it, so `import shadowgate` finds the
package beside it (addons/shadowgate/): no path hack. The pipeline is in shadowgate/stages/.
"""

from shadowgate.stages import default_addons

addons = default_addons()
