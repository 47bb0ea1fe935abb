#!/usr/bin/python3
"""Throughput vs devices on the emulated cluster (project issue #7).

Run through bench/cluster/experiment (which checks root and the build).
For each link rate: bring the cluster up (max devices + a gateway device),
profile, plan every strategy for 1..D devices, run each distinct plan as
`fogpipe stage` processes on their own emulated devices and a `fogpipe
gateway` on "gw", POST images to the gateway from the gw namespace with a
few requests in flight, and record images/min (median of repeats and their
spread), latency, the plan's predictions and bytes per frame per cut.
Progress goes to stderr; the results to bench/results/<timestamp>.json.
"""
import argparse, concurrent.futures as cf, datetime, http.client, json, os, re
import signal, statistics, subprocess, sys, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, 'bench', 'cluster', 'cluster')
CFG = os.path.join(ROOT, 'models', 'yolov1-tiny-tf.cfg')
HAND_CUTS = '5'   # conv1..conv3 with their maxpools = layers 0..5 (models/yolov1-tiny-tf.cfg)
FACE = os.path.join(ROOT, 'data', 'face-api', 'tiny_face_detector_model-weights_manifest.json')
# name -> title, image (when --image is not given), the prototype's strategies apply
MODELS = {
    'yolov1-tiny-tf': ('yolov1-tiny-tf 448x448 (random weights)', '/usr/share/darknet/data/dog.jpg', True),
    # face-api's pretrained tiny face detector at 416 (scripts/setup-face.sh fetches it); it has no
    # connected layer (no by-type split) and the hand split is the prototype's cut of yolov1-tiny-tf
    'face': ('tiny face detector 416x416 (face-api, pretrained)', os.path.join(ROOT, 'data', 'samples', 'opencv',
                                                                            'messi5.jpg'), False),
}
GW_IP = '10.77.0.2'
T0 = time.monotonic()


def log(msg):
    print(f'[{time.monotonic() - T0:6.1f}s] {msg}', file=sys.stderr, flush=True)


def sh(args, **kw):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kw).stdout


def cexec(dev, args, **kw):
    return sh([CLUSTER, 'exec', dev] + args, **kw)


def dev_ip(dev):
    return GW_IP if dev == 'gw' else f'10.77.0.{10 + int(dev[3:])}'


def rate_bits(rate):
    """bits/s of a tc rate (20mbit, 1gbit)"""
    m = re.fullmatch(r'([0-9.]+)([kmg]?)bit', rate.lower())
    if not m:
        raise SystemExit(f'experiment: bad link rate {rate!r} (use e.g. 20mbit, 1gbit)')
    return float(m.group(1)) * {'': 1, 'k': 1e3, 'm': 1e6, 'g': 1e9}[m.group(2)]


STRATEGIES = [  # name, plan flags, codec label
    ('by-type', ['--strategy', 'by-type', '--codec', 'none'], 'none'),
    ('hand-split', ['--cuts', HAND_CUTS, '--codec', 'none'], 'none'),
    ('equal-flops', ['--strategy', 'equal-flops', '--codec', 'none'], 'none'),
    ('optimal', ['--strategy', 'optimal', '--codec', 'none'], 'none'),
    ('optimal', ['--strategy', 'optimal', '--codec', 'auto'], 'auto'),
    # every device a stage of its own (no replicas): where compression must carry the cuts
    ('optimal-chain', ['--strategy', 'optimal', '--no-replicas', '--codec', 'none'], 'none'),
    ('optimal-chain', ['--strategy', 'optimal', '--no-replicas', '--codec', 'auto'], 'auto'),
]


class Exp:
    def __init__(self, a):
        self.a = a
        self.fp = a.fogpipe
        self.work = a.work
        self.procs = []
        self.speeds = {}  # model -> measured device speed (calibrate)
        self.link_costs = {}  # link rate -> its CPU cost per byte at each end (link_cost)

    # ---------- plans ----------
    def model_args(self):
        if self.model == 'face':
            return ['--model', FACE, '--input-size', '416']
        return ['--cfg', CFG, '--weights', self.weights]

    def plan(self, profile, n, link, latency, speed, flags, out):
        args = [self.fp, 'plan'] + self.model_args() + ['--profile', profile,
                '--devices', str(n), '--link', link, '--latency', str(latency), '--speed', str(speed),
                # the gateway sends the encoded image (smaller than its pixels; a JPEG re-encoded
                # losslessly when that is smaller): that is the input cut
                '--input-image', self.image,
                '--json', '-o', out] + flags
        r = subprocess.run(args, text=True, capture_output=True)
        if r.returncode != 0:
            return None, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f'exit {r.returncode}'
        return json.load(open(out)), None

    def bench_mean(self, dev, iters):
        """mean ms per whole pass (wall time over the timed passes) on the host (dev None) or a device"""
        args = [self.fp, 'bench'] + self.model_args() + ['--iters', str(iters), '--warmup', '2', '--json']
        out = cexec(dev, args) if dev else sh(args)
        return json.loads(out.strip().splitlines()[-1])['mean_ms']

    def link_cost(self, link, host_profile):
        """What the emulated link costs each end's CPU per byte (`fogpipe link` from dev0 to dev1,
        three times; the median of each end), for a copy of the host profile's
        wire_send_ns_per_byte / wire_recv_ns_per_byte: loopback, which `fogpipe profile` measures,
        moves 64 KiB at a time where the shaped veth carries every 1448-byte segment through the
        stack at both ends, and a slow link wakes the receiver per packet. CPU time does not
        depend on the quota, so the figures are host CPU, as the profile's are."""
        mib = max(2, min(32, int(rate_bits(link) * 2 / 8 / 2**20)))  # about 2 s of the link
        runs = []
        for k in range(3):
            ep = f'tcp://{dev_ip("dev1")}:{5590 + k}'
            rx = subprocess.Popen([CLUSTER, 'exec', 'dev1', self.fp, 'link', '--listen', ep, '--json',
                                   '--timeout', '30'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(0.3)
            s = json.loads(cexec('dev0', [self.fp, 'link', '--connect', ep, '--mib', str(mib), '--json',
                                          '--timeout', '30']).strip().splitlines()[-1])
            rx.wait(30)
            runs.append(s)
        send = statistics.median(r['wire_send_ns_per_byte'] for r in runs)
        recv = statistics.median(r['wire_recv_ns_per_byte'] for r in runs)
        p = json.load(open(host_profile))
        log(f'link {link}: {mib} MiB from dev0 to dev1 at {statistics.median(r["mbit_per_s"] for r in runs):.1f} '
            f'Mbit/s of frames, CPU per byte {send:.2f} ns sending, {recv:.2f} ns receiving '
            f'(loopback, in the profile: {p.get("wire_ns_per_byte", 0):.2f} each end + '
            f'{p.get("wire_ns_per_packet", 0) / 1e3:.1f} us per packet a slow link brings)')
        return {'mib': mib, 'send_ns_per_byte': round(send, 4), 'recv_ns_per_byte': round(recv, 4),
                'runs': runs}

    def calibrate(self, host_profile):
        """The speed an emulated device really has: a CPU quota of X delivers less than X of a core to
        a compute-bound pass (CFS throttling; 0.21-0.25 measured for 0.25), so the device's mean pass
        is measured (several seconds under the quota, so that throttled periods count; twice,
        interleaved with the host's), and the speed is the host profile's whole pass over it: the
        planner then puts the whole network on the device at the time it measured, whatever minute
        the profile was taken in (its layers give the shares). A quota never gives more than its
        share: the device's pass is taken as at least the host's best mean / the nominal share.
        Three rounds; the least of the device's means counts (what else the machine runs only
        slows a measurement down: 16.2 and 18.4 ms in two consecutive ones)."""
        total_ms = json.load(open(host_profile))['total_ms']
        iters = max(10, int(4000 / (total_ms / self.a.cpu)))
        hs, qs = [], []
        for _ in range(3):
            hs.append(self.bench_mean(None, iters)); qs.append(self.bench_mean('dev0', iters))
        device_ms = max(min(qs), min(hs) / self.a.cpu)
        speed = total_ms / device_ms
        log(f'device speed: {iters} passes, host {min(hs):.2f} ms, under the {self.a.cpu} quota '
            f'{min(qs):.2f} ms, host profile {total_ms:.2f} ms: {speed:.3f} of the profile '
            f'(nominal {self.a.cpu})')
        return {'speed': round(speed, 4), 'iters': iters, 'host_mean_ms': [round(x, 3) for x in hs],
                'quota_mean_ms': [round(x, 3) for x in qs], 'profile_total_ms': total_ms}

    @staticmethod
    def layout(p):
        # the last stage's codec is moot: it sends the gateway the result JSON, not its heads
        st = p['stages']
        return json.dumps([(s['layers'], s['devices'], s['out']['codec'] if k + 1 < len(st) else None)
                           for k, s in enumerate(st)])

    # ---------- processes ----------
    def start(self, dev, args, name):
        logf = open(os.path.join(self.work, f'{name}.log'), 'w')
        p = subprocess.Popen([CLUSTER, 'exec', dev] + args, stdout=logf, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill(); p.wait()
        self.procs = []

    def http_get(self, hostport, path, timeout=2):
        host, port = hostport.rsplit(':', 1)
        r = subprocess.run([CLUSTER, 'exec', 'gw', 'curl', '-s', '-m', str(timeout), '-o', '-', '-w', '\n%{http_code}',
                            f'http://{hostport}{path}'], text=True, capture_output=True)
        body, _, code = r.stdout.rpartition('\n')
        return (int(code) if code.isdigit() else 0), body

    def launch(self, plan_path, plan):
        """Gateway on gw, stage replicas on their devices; returns (stage http list, first list)."""
        st = plan['stages']
        eps = [[f'tcp://{dev_ip(d)}:{5601 + k}' for d in s['devices']] for k, s in enumerate(st)]
        https = [[f'{dev_ip(d)}:{9601 + k}' for d in s['devices']] for k, s in enumerate(st)]
        results = f'tcp://{GW_IP}:5600'
        window = max(4, 2 * sum(len(s['devices']) for s in st) + 2)
        self.window = window
        self.start('gw', [self.fp, 'gateway', '--plan', plan_path, '--first', ','.join(eps[0]), '--results', results,
                          '--http', f'{GW_IP}:8080', '--window', str(window), '--resend-ms', '60000', '--timeout', '300',
                          '--stage-http', ','.join(h for hs in https for h in hs)], 'gateway')
        for k in reversed(range(len(st))):
            nxt = ','.join(eps[k + 1]) if k + 1 < len(st) else results
            for r, d in enumerate(st[k]['devices']):
                self.start(d, [self.fp, 'stage', '--plan', plan_path, '--stage', str(k), '--bind', eps[k][r],
                               '--next', nxt, '--http', https[k][r]], f'stage{k}.{r}')
        allhttp = [h for hs in https for h in hs] + [f'{GW_IP}:8080']
        deadline = time.monotonic() + 120
        pending = list(allhttp)
        while pending:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError('a pipeline process exited during start-up (logs in %s)' % self.work)
            if time.monotonic() > deadline:
                raise RuntimeError(f'not ready after 120 s: {pending}')
            pending = [h for h in pending if self.http_get(h, '/readyz' if not h.endswith(':8080') else '/healthz')[0] != 200]
            if pending:
                time.sleep(0.5)
        return https

    # ---------- load ----------
    def load(self, n_images, inflight):
        """POST n_images to the gateway from the gw namespace, inflight at a time."""
        code = r'''
import http.client, json, sys, threading, time
host, n, k, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
body = open(path, 'rb').read()
lock = threading.Lock(); todo = [n]; lat = []; done = []; errs = [0]
def worker():
    c = http.client.HTTPConnection(host, 8080, timeout=600)
    while True:
        with lock:
            if todo[0] == 0: return
            todo[0] -= 1
        t = time.monotonic()
        try:
            c.request('POST', '/v1/detect?name=img', body, {'Content-Type': 'image/jpeg'})
            r = c.getresponse(); r.read(); ok = r.status == 200
        except Exception:
            ok = False; c = http.client.HTTPConnection(host, 8080, timeout=600)
        e = time.monotonic()
        with lock:
            if ok: lat.append((e - t) * 1000); done.append(e)
            else: errs[0] += 1
t0 = time.monotonic()
ts = [threading.Thread(target=worker) for _ in range(k)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps({"t0": t0, "done": sorted(done), "lat": lat, "errors": errs[0]}))
'''
        out = cexec('gw', ['/usr/bin/python3', '-c', code, GW_IP, str(n_images), str(inflight), self.image])
        return json.loads(out)

    def metrics(self, https):
        """Per stage, summed over its replicas: bytes and frames sent, and process CPU seconds."""
        out = []
        for k, hs in enumerate(https):
            tot = {'bytes': 0.0, 'frames': 0.0, 'cpu_s': 0.0, 't': time.monotonic()}
            for h in hs:
                code, body = self.http_get(h, '/metrics')
                for line in body.splitlines():
                    for key, pat in (('bytes', r'fogpipe_bytes_out_total\{[^}]*\}'), ('frames', r'fogpipe_frames_out_total\{[^}]*\}'),
                                     ('cpu_s', r'process_cpu_seconds_total')):
                        m = re.match(pat + r'\s+([0-9.e+]+)$', line)
                        if m: tot[key] += float(m.group(1))
            out.append(tot)
        return out

    def pin(self, devs):
        """Pins each of `devs` to a CPU of its own (devK on CPU K+1 modulo the CPUs, as `cluster up`
        does) when they fit, every other device unpinned; with more devices than CPUs none is pinned
        (pinned, two would time-slice one CPU). Returns whether they were pinned."""
        if self.a.no_pin:
            return False
        ncpu = len(os.sched_getaffinity(0))
        fit = len(devs) <= ncpu
        every = [d for d in self.all_devs if d != 'gw']
        r = subprocess.run([CLUSTER, 'cpus'] + [f'{d}={(int(d[3:]) + 1) % ncpu}' if fit and d in devs else f'{d}=all'
                                                for d in every], capture_output=True, text=True)
        if r.returncode != 0:  # no cpuset controller: `cluster up` said so
            return False
        return fit

    def measure(self, plan_path, plan, pred_ipm):
        used = sorted({d for s in plan['stages'] for d in s['devices']})
        pinned = self.pin(used)
        https = self.launch(plan_path, plan)
        k = self.window
        # warm-up: fill the pipeline once
        self.load(k, k)
        before = self.metrics(https)
        rates, lats = [], []
        per_s = max(pred_ipm, 10) / 60.0
        n = max(self.a.min_images, int(per_s * self.a.seconds))
        for r in range(self.a.repeats):
            res = self.load(n, k)
            if res['errors']:
                log(f'    {res["errors"]} requests failed')
            d = res['done']
            # rate in the steady part: from the k-th completion to the last (the first k only fill the pipe);
            # a slow pipeline that gets no more than k images has them all in flight from the start, so
            # they come out at the bottleneck's pace after the first: (n - 1) / (last - first)
            if len(d) > k + 1:
                rate = (len(d) - k) / (d[-1] - d[k - 1]) * 60
            elif len(d) >= 2 and d[-1] > d[0]:
                rate = (len(d) - 1) / (d[-1] - d[0]) * 60
            else:
                rate = len(d) / (d[-1] - res['t0']) * 60
            rates.append(rate); lats += res['lat']
            log(f'    repeat {r + 1}/{self.a.repeats}: {n} images, {rate:.1f} images/min, latency p50 {statistics.median(res["lat"]):.0f} ms')
        after = self.metrics(https)
        self.stop_all()
        cuts = [round(b['bytes'] / b['frames']) if b['frames'] else None for b in after]
        # each stage's CPU per frame over the timed repeats (throttling by the quota does not change it;
        # compare with the plan's stage time x device speed) and the share of a core it got
        cpu = []
        for k0, (b, e) in enumerate(zip(before, after)):
            frames, secs = e['frames'] - b['frames'], e['cpu_s'] - b['cpu_s']
            cpu.append({'cpu_ms_per_frame': round(secs / frames * 1e3, 2) if frames > 0 else None,
                        'cpu_share': round(secs / (e['t'] - b['t']), 3) if e['t'] > b['t'] else None})
        return {
            'pinned': pinned,
            'images_per_min': round(statistics.median(rates), 2),
            'images_per_min_spread': [round(min(rates), 2), round(max(rates), 2)],
            'images_per_min_repeats': [round(x, 2) for x in rates],
            'latency_ms': round(statistics.median(lats), 1),
            'latency_p90_ms': round(sorted(lats)[int(0.9 * (len(lats) - 1))], 1),
            'images_per_repeat': n, 'inflight': k,
            'bytes_per_frame_measured': cuts,
            'stage_cpu': cpu,
        }

    # ---------- main ----------
    def run(self):
        a = self.a
        os.makedirs(self.work, exist_ok=True)
        self.weights = os.path.join(self.work, 'v1tf.weights')
        if not os.path.exists(self.weights):
            sh([self.fp, 'random-weights', '--cfg', CFG, '--seed', '1', '-o', self.weights])
        points = []
        for model in a.models:
            if model == 'face' and not os.path.exists(FACE):
                log(f'face detector: {FACE} missing (bash scripts/setup-face.sh fetches it): skipped')
                continue
            image = a.image or MODELS[model][1]
            if not os.path.exists(image):
                log(f'{model}: image {image} missing: skipped')
                continue
            self.model, self.image = model, image
            points += self.run_model()
        return points

    def run_model(self):
        a, model = self.a, self.model
        points = []
        for link in a.links:
            log(f'{model}, link {link}: cluster up ({a.max_devices} devices + gw, cpu {a.cpu})')
            subprocess.run([CLUSTER, 'down'], capture_output=True)
            sh([CLUSTER, 'up', '--devices', str(a.max_devices), '--cpu', str(a.cpu), '--link', link,
                '--delay', a.delay, '--gateway'] + (['--loss', a.loss] if a.loss else []) +
               (['--no-pin'] if a.no_pin else []))
            status = json.loads(sh([CLUSTER, 'status', '--json']))
            self.all_devs = [s['device'] for s in status]
            eff_delay = float(re.sub(r'[a-z]+$', '', status[0]['delay']) or 0)
            latency = eff_delay * 2  # device -> bridge -> device: two shaped links
            try:
                host = os.path.join(self.work, f'{model}-host.json')
                if not os.path.exists(host):
                    log('profiling on the host (no quota)')
                    # --image: the codecs on real feature maps, and the per-frame image decode (stage 0)
                    # and result (last stage) that the planner adds to those stages
                    sh([self.fp, 'profile'] + self.model_args() + ['--iters', '10', '--image', self.image, '-o', host])
                self.pin(['dev0', 'dev1'])  # the calibrations: as the 1- and 2-device points run
                if model not in self.speeds:
                    log(f'measuring the speed of a device with a {a.cpu} cpu quota')
                    self.speeds[model] = self.calibrate(host)
                speed = self.speeds[model]['speed']
                if not a.loopback_wire:
                    linked = os.path.join(self.work, f'{model}-host-{link}.json')
                    if link not in self.link_costs:
                        log(f'measuring what the {link} link costs each end')
                    cost = self.link_costs.get(link) or self.link_cost(link, host)
                    self.link_costs[link] = cost
                    # On a link slower than a device's wake-up (20 Mbit/s: a packet every 0.58 ms, a
                    # wake-up 0.1 ms at 0.25), the receiver wakes per packet or, when the stream
                    # bunches, per few: 3 and 22 ns per byte in consecutive 4 MiB runs here. The
                    # profile's per-packet wake-up prices that case (within 10% per stage); the link's
                    # figures are used where packets come faster than a wake-up, and recorded always.
                    hp = json.load(open(host))
                    wake_s = hp.get('wire_ns_per_packet', 0) * 1e-9 / speed
                    cost['used'] = wake_s > 0 and 1448 * 8 / rate_bits(link) < wake_s
                    if not cost['used']:
                        log(f'link {link}: slower than a wake-up ({wake_s * 1e6:.0f} us at speed {speed}): planning with '
                            'the per-packet wake-up, not these figures')
                    elif not os.path.exists(linked):
                        p = dict(hp)
                        p['wire_send_ns_per_byte'], p['wire_recv_ns_per_byte'] = cost['send_ns_per_byte'], cost['recv_ns_per_byte']
                        with open(linked, 'w') as f:
                            json.dump(p, f, indent=1)
                    if cost['used']:
                        host = linked
                measured = {}
                for n in range(1, a.max_devices + 1):
                    for strat, flags, codec in STRATEGIES:
                        if strat in ('by-type', 'hand-split') and not MODELS[model][2]:
                            continue
                        ppath = os.path.join(self.work, f'plan-{model}-{link}-{n}-{strat}-{codec}.json')
                        plan, err = self.plan(host, n, link, latency, speed, flags, ppath)
                        if plan is None:
                            log(f'{model} {link} {n} dev {strat}/{codec}: no plan ({err})')
                            continue
                        # the same partition predicted at the nominal share (what the quota promises)
                        qplan, _ = self.plan(host, n, link, latency, a.cpu, flags, ppath + '.nominal')
                        lay = self.layout(plan)
                        pred = plan['predicted']['images_per_min']
                        used = sum(len(s['devices']) for s in plan['stages'])
                        log(f'{model} {link} {n} dev {strat}/{codec}: {len(plan["stages"])} stage(s) on {used} device(s) '
                            f'{lay} predicted {pred} images/min')
                        if lay in measured:
                            m = dict(measured[lay]); m['reused_from'] = m.get('reused_from') or m['_first']
                            log('    same plan as ' + m['reused_from'] + ': measurement reused')
                        else:
                            m = self.measure(ppath, plan, pred)
                            m['_first'] = f'{strat}/{codec} on {n} devices'
                            measured[lay] = m
                        pt = {
                            'model': model, 'image': self.image, 'strategy': strat, 'codec': codec, 'link': link, 'devices': n,
                            'devices_used': used, 'cpu': a.cpu, 'speed': speed, 'delay_ms_emulated': eff_delay,
                            'loss_per_link': status[0]['loss'],
                            'stages': [{'layers': s['layers'], 'devices': s['devices'], 'codec': s['out']['codec'],
                                        'bytes_per_frame_planned': s['out']['bytes'],
                                        'raw_bytes_per_frame': s['out']['raw_bytes'],
                                        # the plan's time per frame at the device's speed, as CPU time
                                        'cpu_ms_per_frame_predicted':
                                            round(s['compute_ms'] * len(s['devices']) * speed, 2)}
                                       for s in plan['stages']],
                            'predicted_images_per_min': pred,
                            'predicted_images_per_min_nominal':
                                qplan['predicted']['images_per_min'] if qplan and self.layout(qplan) == lay else None,
                            'predicted_latency_ms': plan['predicted']['latency_ms'],
                            'predicted_bottleneck': plan['predicted']['bottleneck'],
                        }
                        pt.update({k: v for k, v in m.items() if k not in ('_first', 'stage_cpu')})
                        for st, c in zip(pt['stages'], m['stage_cpu']):
                            st.update(c)
                        fmt = lambda v: '?' if v is None else f'{v:g}'
                        log('    CPU per frame by stage, measured / predicted: ' +
                            ', '.join(f'{fmt(st.get("cpu_ms_per_frame"))} / {fmt(st["cpu_ms_per_frame_predicted"])} ms '
                                      f'(share {fmt(st.get("cpu_share"))})' for st in pt['stages']))
                        pt['bytes_per_frame'] = m['bytes_per_frame_measured']
                        points.append(pt)
            finally:
                self.stop_all()
                subprocess.run([CLUSTER, 'down'], capture_output=True)
        return points


def charts(points, base):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        log('matplotlib missing (apt-get install python3-matplotlib): no charts')
        return []
    files = []
    for model in sorted({p['model'] for p in points}):
        files += model_charts([p for p in points if p['model'] == model], model, plt,
                              base if model == 'yolov1-tiny-tf' else f'{base}-{model}')
    return files


def model_charts(points, model, plt, base):
    """images/min vs devices and predicted vs measured for one model's points."""
    files = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = sorted({(p['strategy'], p['codec'], p['link']) for p in points})
    for s, c, l in keys:
        ps = sorted((p for p in points if (p['strategy'], p['codec'], p['link']) == (s, c, l)), key=lambda p: p['devices'])
        xs = [p['devices'] for p in ps]; ys = [p['images_per_min'] for p in ps]
        lo = [y - p['images_per_min_spread'][0] for y, p in zip(ys, ps)]
        hi = [p['images_per_min_spread'][1] - y for y, p in zip(ys, ps)]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker='o', capsize=3, label=f'{s} codec={c} {l}')
    ax.set_xlabel('devices in the cluster'); ax.set_ylabel('images/min (measured)')
    ax.set_title(f'{MODELS[model][0]}, emulated devices'); ax.set_xticks(sorted({p['devices'] for p in points}))
    ax.legend(fontsize=7); ax.grid(alpha=.3)
    for ext in ('png', 'svg'):
        fig.savefig(f'{base}-devices.{ext}', dpi=110, bbox_inches='tight'); files.append(f'{base}-devices.{ext}')
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    m = max([p['images_per_min'] for p in points] + [p['predicted_images_per_min'] for p in points]) * 1.1
    ax.plot([0, m], [0, m], 'k--', lw=.8, label='predicted = measured')
    ax.scatter([p['predicted_images_per_min'] for p in points], [p['images_per_min'] for p in points],
               label='host profile / measured device speed')
    q = [p for p in points if p.get('predicted_images_per_min_nominal')]
    ax.scatter([p['predicted_images_per_min_nominal'] for p in q], [p['images_per_min'] for p in q],
               marker='x', label='host profile / nominal cpu share')
    ax.set_xlabel('predicted images/min'); ax.set_ylabel('measured images/min')
    ax.set_xlim(0, m); ax.set_ylim(0, m); ax.legend(fontsize=7); ax.grid(alpha=.3)
    for ext in ('png', 'svg'):
        fig.savefig(f'{base}-predicted.{ext}', dpi=110, bbox_inches='tight'); files.append(f'{base}-predicted.{ext}')
    plt.close(fig)
    return files


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--json', action='store_true')
    ap.add_argument('--fogpipe', default=os.path.join(ROOT, 'build', 'fogpipe'))
    ap.add_argument('--cpu', type=float, default=0.25)
    ap.add_argument('--loopback-wire', action='store_true',
                    help="plan with the profile's loopback link costs instead of measuring the emulated link "
                         '(`fogpipe link`)')
    ap.add_argument('--no-pin', action='store_true',
                    help='let devices run on any host CPU (default: each device pinned to one, as `cluster up` does)')
    ap.add_argument('--delay', default='5ms',
                    help="each device link's delay (`cluster up --delay`; two links between devices: 2 x this "
                         'one way; netem, or fp_netem where the kernel has none)')
    ap.add_argument('--loss', help="each device link's packet loss, e.g. 0.1%% (`cluster up --loss`; default none)")
    ap.add_argument('--image', help='the image every model is fed (default: dog.jpg for yolov1-tiny-tf, '
                                     'OpenCV\'s messi5.jpg for the face detector)')
    ap.add_argument('--models', help='comma-separated: yolov1-tiny-tf, face (default: both; --quick: yolov1-tiny-tf)')
    ap.add_argument('--links', help='comma-separated link rates (default: 20mbit,1gbit; --quick: 20mbit)')
    ap.add_argument('--max-devices', type=int, help='devices 1..N (default 4; --quick: 3)')
    ap.add_argument('--repeats', type=int, help='repeats per point (default 5; --quick: 3)')
    ap.add_argument('--seconds', type=float, help='seconds of images per repeat (default 20; --quick: 6)')
    ap.add_argument('--out', default=os.path.join(ROOT, 'bench', 'results'))
    a = ap.parse_args()
    a.fogpipe = os.path.abspath(a.fogpipe)
    a.models = (a.models or ('yolov1-tiny-tf' if a.quick else 'yolov1-tiny-tf,face')).split(',')
    for m in a.models:
        if m not in MODELS:
            ap.error(f'unknown model {m!r} (expected {", ".join(MODELS)})')
    a.links = (a.links or ('20mbit' if a.quick else '20mbit,1gbit')).split(',')
    a.max_devices = a.max_devices or (3 if a.quick else 4)
    a.repeats = a.repeats or (3 if a.quick else 5)
    a.seconds = a.seconds or (6 if a.quick else 20)
    if not (1 <= a.max_devices <= 8 and 1 <= a.repeats <= 50 and 1 <= a.seconds <= 600):
        ap.error('--max-devices 1..8, --repeats 1..50, --seconds 1..600')
    a.min_images = 6 if a.quick else 12
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    a.work = os.path.join('/tmp', f'fogpipe-experiment-{stamp}')
    os.makedirs(a.out, exist_ok=True)
    if a.quick:  # under 10 minutes: the chained plans compressed only
        global STRATEGIES
        STRATEGIES = [s for s in STRATEGIES if s[:3:2] != ('optimal-chain', 'none')]
    e = Exp(a)
    try:
        points = e.run()
    except KeyboardInterrupt:
        e.stop_all(); subprocess.run([CLUSTER, 'down'], capture_output=True); raise
    path = os.path.join(a.out, f'{stamp}.json')
    with open(path, 'w') as f:
        json.dump({'fogpipe_experiment': 1, 'started': stamp, 'quick': a.quick, 'models': a.models,
                   'cpu': a.cpu, 'pinned': not a.no_pin, 'device_speed': e.speeds, 'links': a.links,
                   'link_cost': None if a.loopback_wire else e.link_costs,
                   'host_cores': os.cpu_count(),
                   'seconds': round(time.monotonic() - T0, 1), 'points': points}, f, indent=1)
    files = charts(points, os.path.join(a.out, stamp))
    log(f'wrote {path} ' + ' '.join(files))
    log('%-14s %-12s %-5s %-7s %3s %8s %15s %8s %9s %9s  %s' % ('model', 'strategy', 'codec', 'link', 'dev', 'img/min',
                                                                    'spread', 'lat ms', 'pred', 'pred(nom)',
                                                                    'bytes/frame per cut'))
    for p in points:
        log('%-14s %-12s %-5s %-7s %3d %8.1f %15s %8.0f %9.1f %9s  %s' % (
            p['model'], p['strategy'], p['codec'], p['link'], p['devices'], p['images_per_min'],
            '%.1f-%.1f' % tuple(p['images_per_min_spread']), p['latency_ms'], p['predicted_images_per_min'],
            p['predicted_images_per_min_nominal'], p['bytes_per_frame']))
    if a.json:
        json.dump(points, sys.stdout, indent=1); print()


if __name__ == '__main__':
    main()
