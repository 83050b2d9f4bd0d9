# Sourced by loopback_service.sh and port_service.sh: writes the service's
# configuration to $dir/config.json from `flextoe-dpu default-config`.
# Argument: Python statements on the configuration `c` that choose the
# port. Then the shared settings: the control socket in $dir, metrics off,
# DMA_LATENCY_NS when set (`host.dma_latency_ns`), and SERVICE_TWEAK last.
write_service_config() {
  $BIN/flextoe-dpu default-config | python3 -c "
import json, sys
c = json.load(sys.stdin)
exec('''
$1
''')
c['host']['control_socket'] = '$dir/control.sock'
c['metrics']['enabled'] = False
if '${DMA_LATENCY_NS:-}':
    c['host']['dma_latency_ns'] = int('${DMA_LATENCY_NS:-0}')
exec('''${SERVICE_TWEAK:-}''')
json.dump(c, open('$dir/config.json', 'w'))"
}
