# The manual page: `roomcast --man` (roff from the settings table, the same source as --help) renders without a
# warning, names every option and variable of --help, and is the file the build wrote (build/server/roomcast.1);
# README's table of flags lists every option too.
# Rule: the manual cannot drift from the binary, because the binary writes it.
import os
import re
import shutil
import subprocess
import unittest

from roomcast_harness import TIMEOUT, server_binary


def output(*args):
    r = subprocess.run([server_binary()] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    assert r.stderr == "", r.stderr
    return r.stdout


class ManPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.man = output("--man")
        cls.help = output("--help")

    def help_options(self):
        """[(flag, env or None)] of every option --help lists."""
        opts = []
        for line in self.help.splitlines():
            m = re.match(r"^  --([a-z-]+)(?: [A-Z_]+)?\s+(?:([A-Z][A-Z_]+)\s)?", line)
            if m:
                opts.append((m.group(1), m.group(2)))
        return opts

    def test_sections(self):
        self.assertTrue(self.man.startswith('.\\" '), "starts with a comment saying it is generated")
        self.assertRegex(self.man, r'(?m)^\.TH ROOMCAST 1 ')
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT", "FILES", "EXIT STATUS",
                        "EXAMPLES", "SEE ALSO"):
            self.assertRegex(self.man, r"(?m)^\.SH %s$" % section)

    def test_every_option_of_help_is_in_the_manual(self):
        opts = self.help_options()
        self.assertGreater(len(opts), 25)
        for flag, env in opts:
            roff = "\\-\\-" + flag.replace("-", "\\-")
            self.assertRegex(self.man, r"(?m)^\.BI? %s( |$)" % re.escape(roff), "--%s has no entry in OPTIONS" % flag)
            if env:
                self.assertIn("Environment: \\fB%s\\fR" % env, self.man, "--%s: no environment variable" % flag)
                self.assertRegex(self.man, r"(?m)^\.B %s$" % env, "%s not in ENVIRONMENT" % env)
        for flag in ("check-config", "man", "help", "version", "config", "admin-port", "log-format"):
            self.assertIn(flag, [f for f, _ in opts])

    def test_every_option_of_help_is_in_the_readme(self):
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(os.path.join(repo, "README.md")) as f:
            readme = f.read()
        for flag, env in self.help_options():
            if env:
                self.assertIn("| `--%s` | `%s` |" % (flag, env), readme, "README's table lacks --%s" % flag)

    def test_renders_without_warnings(self):
        groff = shutil.which("groff")
        if groff:
            r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", "-rCHECKSTYLE=3"], input=self.man,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
            self.assertEqual((r.returncode, r.stderr), (0, ""), "groff warnings")
            r = subprocess.run([groff, "-man", "-Tutf8"], input=self.man, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=TIMEOUT, env=dict(os.environ, LC_ALL="C.UTF-8"))
            text = re.sub(r".\x08", "", r.stdout)
            for flag, _ in self.help_options():
                self.assertIn("--" + flag, text.replace("\u2010", "-").replace("\u2212", "-"))
        else:
            # No groff: every line is a known macro or text, and fonts are closed.
            known = {".TH", ".SH", ".TP", ".B", ".BI", ".BR", ".RI", ".I", ".PP", ".RS", ".RE", ".nf", ".fi", ".br", '.\\"'}
            for line in self.man.splitlines():
                if line.startswith("."):
                    self.assertIn(line.split(" ")[0], known, line)
                self.assertEqual(line.count("\\fB") + line.count("\\fI"), line.count("\\fR"), line)

    def test_the_build_wrote_the_same_page(self):
        built = os.path.join(os.path.dirname(server_binary()), "roomcast.1")
        if not os.path.exists(built):
            self.skipTest("%s not built (the roomcast_man target)" % built)
        with open(built) as f:
            self.assertEqual(f.read(), self.man, "build/server/roomcast.1 is stale")


if __name__ == "__main__":
    unittest.main()
