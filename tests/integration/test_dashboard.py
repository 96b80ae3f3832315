# The monitoring examples: deploy/grafana/roomcast.json names only metrics the server exposes, and
# deploy/prometheus/prometheus.yml is a valid scrape config of admin ports.
# Rule: a dashboard query naming a metric that does not exist fails this test: standalone metrics are read from a
# running instance's /metrics; the Redis Cluster's (only a cluster instance shows them) from the server's sources,
# and from an instance on a real 3-master Redis Cluster when redis-cli is there to create one.
import glob
import json
import os
import re
import shutil
import unittest

from redis_cluster_harness import RedisCluster
from roomcast_harness import REPO, RoomcastServer, http_request_sync, req

DASHBOARD = os.path.join(REPO, "deploy", "grafana", "roomcast.json")
PROMETHEUS = os.path.join(REPO, "deploy", "prometheus", "prometheus.yml")

# Exposed only with --redis-cluster (redis/cluster.cpp writes them); checked against the sources.
CLUSTER_ONLY = {
    "roomcast_redis_masters", "roomcast_redis_node_up", "roomcast_redis_node_slots", "roomcast_redis_node_subscriptions",
    "roomcast_redis_node_commands_total", "roomcast_redis_node_publishes_total", "roomcast_redis_redirects_total",
    "roomcast_redis_slot_map_refreshes_total",
}
METRIC_RE = re.compile(r"\b(roomcast_[a-z0-9_]+)\b")
PROMQL_FUNCS = {"rate", "irate", "increase", "sum", "max", "min", "avg", "count", "histogram_quantile", "by", "without",
                "topk", "bottomk", "label_values", "clamp_min", "delta", "deriv", "abs", "on", "ignoring", "group_left"}


def expressions(dashboard):
    """Every PromQL expression of the dashboard: panel targets (rows included) and template variable queries."""
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                exprs.append(t["expr"])
            walk(p.get("panels", []))
    walk(dashboard.get("panels", []))
    for v in dashboard.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and q:
            exprs.append(q)
    return exprs


def metric_names(expr):
    return set(METRIC_RE.findall(expr))


def exposed(metrics_text):
    """Sample names of a Prometheus exposition (histogram samples under their own names: _bucket, _sum, _count)."""
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", line).group(1))
    return names


def source_metric_names():
    """Metric names written as string literals in the server's and the Redis clients' sources."""
    names = set()
    for path in glob.glob(os.path.join(REPO, "server", "*.cpp")) + glob.glob(os.path.join(REPO, "redis", "*.cpp")):
        with open(path) as f:
            for literal in re.findall(r'"((?:[^"\\\n]|\\.)*)"', f.read()):
                names |= set(METRIC_RE.findall(literal))
    return names


def unknown(exprs, standalone, sources):
    """The metric names of exprs that neither the running instance nor (cluster-only) the sources expose."""
    missing = set()
    for e in exprs:
        for name in metric_names(e):
            if name in standalone:
                continue
            if name in CLUSTER_ONLY and name in sources:
                continue
            missing.add(name)
    return missing


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD) as f:
            cls.dashboard = json.load(f)
        server = RoomcastServer([], name="dashboard")
        cls.addClassCleanup(server.cleanup)
        server.start()
        resp = http_request_sync(server.port, req("GET", "/metrics", server.port, [("Connection", "close")]))
        assert resp.status == 200, resp
        cls.standalone = exposed(resp.body.decode())
        server.stop()
        cls.sources = source_metric_names()

    def test_every_metric_of_the_dashboard_exists(self):
        exprs = expressions(self.dashboard)
        self.assertGreater(len(exprs), 20)
        used = set().union(*(metric_names(e) for e in exprs))
        self.assertEqual(unknown(exprs, self.standalone, self.sources), set(),
                         "the dashboard names metrics the server does not expose")
        # What the dashboard must show.
        for name in ("roomcast_connections", "roomcast_websockets", "roomcast_rooms", "roomcast_messages_in_total",
                     "roomcast_messages_out_total", "roomcast_publish_delivery_ms_bucket", "roomcast_bound_hits_total",
                     "roomcast_broker_up", "roomcast_redis_reconnects_total"):
            self.assertIn(name, used)
        self.assertTrue(CLUSTER_ONLY <= used, CLUSTER_ONLY - used)
        self.assertTrue(CLUSTER_ONLY <= self.sources, CLUSTER_ONLY - self.sources)
        self.assertFalse(CLUSTER_ONLY & self.standalone, "a cluster-only metric is in standalone /metrics: move it")

    def test_the_check_catches_a_wrong_name(self):
        bad = ['sum(rate(roomcast_messages_in_total[5m]))', 'rate(roomcast_mesages_out_total[5m])',
               'roomcast_redis_node_bogus{node="a"}']
        self.assertEqual(unknown(bad, self.standalone, self.sources),
                         {"roomcast_mesages_out_total", "roomcast_redis_node_bogus"})

    def test_queries_are_well_formed(self):
        ids = set()
        variables = {v["name"] for v in self.dashboard["templating"]["list"]}
        self.assertLessEqual({"datasource", "job", "instance"}, variables)

        def walk(panels):
            for p in panels:
                self.assertNotIn(p["id"], ids, "duplicate panel id")
                ids.add(p["id"])
                self.assertIn("gridPos", p)
                for t in p.get("targets", []):
                    e = t["expr"]
                    self.assertEqual(e.count("("), e.count(")"), e)
                    self.assertEqual(e.count("{"), e.count("}"), e)
                    self.assertEqual(e.count("["), e.count("]"), e)
                    for var in re.findall(r"\$(?:\{)?([a-z_]+)", e):
                        self.assertTrue(var in variables or var.startswith("__"), (var, e))
                    # Counters are read through rate() or increase(), never raw.
                    for name in metric_names(e):
                        if name.endswith(("_total", "_bucket", "_sum", "_count")):
                            self.assertRegex(e, r"(rate|increase)\(%s\b" % name, e)
                walk(p.get("panels", []))
        walk(self.dashboard["panels"])
        self.assertEqual(self.dashboard["uid"], "roomcast")


@unittest.skipUnless(shutil.which("redis-server") and shutil.which("redis-cli"), "redis-server and redis-cli needed")
class ClusterDashboard(unittest.TestCase):
    """An instance on a real Redis Cluster exposes every cluster-only metric the dashboard names."""

    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        cls.used = set().union(*(metric_names(e) for e in expressions(dashboard)))
        cluster = RedisCluster()  # 3 masters, a replica each (the rcluster suite's harness)
        cls.addClassCleanup(cluster.cleanup)
        cluster.start()
        server = RoomcastServer(["--redis-cluster", cluster.seeds(), "--instance-id", "on-cluster"], name="cluster")
        cls.addClassCleanup(server.cleanup)
        server.start()
        resp = http_request_sync(server.port, req("GET", "/metrics", server.port, [("Connection", "close")]))
        assert resp.status == 200, resp
        cls.metrics_text = resp.body.decode()
        server.stop()

    def test_cluster_metrics_exist(self):
        names = exposed(self.metrics_text)
        self.assertEqual(CLUSTER_ONLY - names, set(), "cluster-only metrics the cluster instance does not expose")
        self.assertIn('roomcast_redis_masters 3', self.metrics_text)
        used_cluster = {n for n in self.used if n.startswith("roomcast_redis_")}
        self.assertEqual(used_cluster - names, set())


class PrometheusConfig(unittest.TestCase):
    def test_scrape_config_parses(self):
        with open(PROMETHEUS) as f:
            text = f.read()
        self.assertNotIn("\t", text, "YAML forbids tabs for indentation")
        try:
            import yaml
        except ImportError:
            self.assertIn("scrape_configs:", text)
            self.assertRegex(text, r'targets: \["[0-9.]+:\d+"\]')
            return
        conf = yaml.safe_load(text)
        jobs = conf["scrape_configs"]
        self.assertGreaterEqual(len(jobs), 1)
        instances = set()
        for job in jobs:
            self.assertIsInstance(job["job_name"], str)
            self.assertEqual(job.get("metrics_path", "/metrics"), "/metrics")
            for sc in job["static_configs"]:
                for target in sc["targets"]:
                    self.assertRegex(target, r"^[0-9a-z.-]+:\d{1,5}$")
                instance = sc.get("labels", {}).get("instance")
                self.assertTrue(instance, "every target names its instance (--instance-id)")
                self.assertNotIn(instance, instances)
                instances.add(instance)
        self.assertGreaterEqual(len(instances), 2)


if __name__ == "__main__":
    unittest.main()
