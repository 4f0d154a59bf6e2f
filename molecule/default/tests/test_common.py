"""The common role on every host: firewall, names, time, locale, kernel tuning, journal, updates."""

import os
import re
from pathlib import Path

import pytest
import yaml

from stacktest import changed_tasks, hosts_of, inventory, node, run_playbook, tcp_open

testinfra_hosts = ["ansible://all"]


def test_firewall_is_loaded_and_denies_by_default(host):
    ruleset = host.run("nft list table inet stack_filter")
    assert ruleset.rc == 0, ruleset.stderr
    assert "policy drop" in ruleset.stdout.split("chain forward")[0]
    assert host.service("nftables").is_enabled


def test_every_inventory_host_is_in_etc_hosts(host):
    hosts_file = host.file("/etc/hosts").content_string
    for name in hosts_of("all"):
        assert any(line.split()[1:2] == [name] for line in hosts_file.splitlines() if line.strip()), name


def test_time_sync_only_where_the_host_sets_its_clock(host):
    # A container shares its host's clock: no time daemon installed there; everywhere else it runs.
    in_container = host.run("systemd-detect-virt --container").rc == 0
    assert host.package("systemd-timesyncd").is_installed != in_container
    if not in_container:
        assert host.service("systemd-timesyncd").is_enabled


def test_locale_is_the_default_and_generated_only_when_not_built_in(host):
    wanted = host.ansible.get_variables().get("common_locale", "C.UTF-8")
    assert f"LANG={wanted}\n" in host.file("/etc/default/locale").content_string
    # The C library has it (built in or generated): a program started with it gets no warning.
    shell = host.run(f"env -i LANG={wanted} LC_ALL={wanted} locale 2>&1")
    assert shell.rc == 0 and "Cannot set" not in shell.stdout, shell.stdout
    if wanted == "C.UTF-8":
        assert not host.package("locales").is_installed
    else:
        assert host.package("locales").is_installed
        assert wanted.replace("UTF-8", "utf8") in host.run("locale -a").stdout.split()


def test_the_lab_proves_both_kinds_of_locale():
    locales = {inventory().get_variables(name).get("common_locale", "C.UTF-8") for name in hosts_of("all")}
    assert "C.UTF-8" in locales and len(locales) > 1, locales


def test_kernel_settings_for_a_busy_server(host):
    written = host.file("/etc/sysctl.d/60-stack.conf").content_string
    assert re.search(r"^net\.core\.somaxconn\s*=\s*4096$", written, re.M), written
    assert int(host.file("/proc/sys/net/core/somaxconn").content_string) >= 4096


def test_open_file_limit_is_raised_for_services(host):
    assert "DefaultLimitNOFILE=65536" in host.file("/etc/systemd/system.conf.d/60-stack.conf").content_string
    assert host.run("systemctl show --property DefaultLimitNOFILE").stdout.strip() == "DefaultLimitNOFILE=65536"


def test_journal_is_persistent(host):
    assert host.file("/var/log/journal").is_directory
    assert host.run("journalctl --header --no-pager | grep -c '/var/log/journal'").stdout.strip() != "0"


def test_unattended_security_upgrades(host):
    assert host.package("unattended-upgrades").is_installed
    # What apt makes of all of /etc/apt/apt.conf.d (the last file that sets a value wins).
    effective = host.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in effective, effective
    assert 'APT::Periodic::Update-Package-Lists "1";' in effective, effective
    assert "Debian-Security" in host.file("/etc/apt/apt.conf.d/52stack-unattended-upgrades").content_string
    # A server's link is not metered: unattended-upgrades skips that check, which needs python3-gi.
    metered = host.check_output("apt-config dump Unattended-Upgrade::Skip-Updates-On-Metered-Connections")
    assert metered.endswith('"false";'), metered


def test_packages_come_without_a_desktops_recommendations(host):
    """The base packages and restic are installed without their recommendations: none of the libraries and
    files a desktop wants (GObject bindings, the MIME database, user folders) or restic's manual and FUSE."""
    found = host.run("dpkg-query -W -f '${Package} ${Status}\\n' python3-gi shared-mime-info xdg-user-dirs "
                     "libglib2.0-data fuse3 sphinx-rtd-theme-common")
    installed = [line.split()[0] for line in found.stdout.splitlines() if line.endswith(" installed")]
    assert not installed, installed


def test_the_agents_packages_came_in_the_base_packages_apt_run(host):
    """Where the inventory has a monitoring host, a host's first apt run brought the node exporter with the base
    packages: one apt run fewer (each costs a server about 2 CPU-seconds). Its settings were written before, so
    its very first start already listened on the private address."""
    assert hosts_of("monitoring")
    runs = host.file("/var/log/apt/history.log").content_string.strip().split("\n\n")
    base = [run for run in runs if re.search(r"[ ,]nftables:", run)]
    assert base and "prometheus-node-exporter:" in base[0], base[:1]
    listened = re.findall(r'msg="Listening on" address=([0-9.]+):(\d+)',
                          host.check_output("journalctl -q -u prometheus-node-exporter -o cat"))
    private = host.check_output("hostname -I").split()[0]
    assert listened and set(listened) == {(private, "9100")}, listened


@pytest.fixture
def listener(host):
    """A throwaway TCP listener on port 9999 of this host, that no rule allows."""
    host.run("systemd-run --unit stack-probe-listener python3 -m http.server 9999")
    assert host.run("for i in $(seq 50); do ss -ltn | grep -q ':9999 ' && exit 0; sleep 0.1; done; exit 1").rc == 0
    yield 9999
    host.run("systemctl stop stack-probe-listener")


def test_a_port_no_role_opened_is_closed_to_other_hosts(host, listener):
    me = host.backend.get_hostname()
    other = next(h for h in hosts_of("all") if h != me)
    assert tcp_open(me, "127.0.0.1", listener), "the listener itself must answer on loopback"
    assert not tcp_open(other, me, listener, timeout=1.5)


def test_a_rule_file_of_a_service_the_host_no_longer_runs_is_removed():
    """A host that left a tier (here: a cache server that was a web node) stops accepting that tier's clients:
    the next run removes the rule file of the service it no longer runs, and keeps the others."""
    from stacktest import node, run_playbook

    cache = hosts_of("cacheservers")[0]
    h = node(cache)
    planted = h.run("printf '# shop-web\\ntcp dport { 8000 } accept\\n' > /etc/nftables.d/50-shop-web.nft "
                    "&& systemctl reload nftables && nft list ruleset | grep -q 'dport 8000'")
    assert planted.rc == 0, planted.stderr
    rc, out = run_playbook("playbooks/common.yml", limit=[cache])
    assert rc == 0, out[-3000:]
    assert not h.file("/etc/nftables.d/50-shop-web.nft").exists
    assert h.file("/etc/nftables.d/50-memcached.nft").exists
    assert "dport 8000" not in h.run("nft list ruleset").stdout


def test_a_module_that_ran_before_its_library_was_installed_works_once_it_is(tmp_path):
    """Mitogen (ansible.cfg's strategy) keeps one Python interpreter per server for a whole run. A module that ran
    before its library was there (community.mysql before python3-mysqldb, as on a host being set up: a lost
    primary restored onto a new host) must work once a later task of the same run installs it. Before each task
    ran in a child of that interpreter (the strategy plug-in forks one for every module but Ansible's own that
    import only the standard library), the failed import stuck and the restore
    stopped with "A MySQL module is required"."""
    target = hosts_of("cacheservers")[0]
    server = node(target)
    assert not server.package("python3-mysqldb").is_installed, "the test needs a host without python3-mysqldb"
    query = {"query": "SELECT 1", "login_unix_socket": "/nonexistent/mysqld.sock"}
    play = {"name": "A library installed in the middle of a run", "hosts": target, "gather_facts": False,
            "become": True, "tasks": [
                {"name": "Query before the library", "community.mysql.mysql_query": query,
                 "register": "before", "failed_when": False},
                {"name": "Install the library", "ansible.builtin.apt": {"name": "python3-mysqldb"}},
                {"name": "Query after it", "community.mysql.mysql_query": query,
                 "register": "after", "failed_when": False},
                {"name": "Both answers", "ansible.builtin.debug": {
                    "msg": "BEFORE={{ before.msg }} AFTER={{ after.msg }}"}}]}
    # Beside the project's group_vars, as every playbook of the project is.
    (tmp_path / "group_vars").symlink_to(Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "group_vars")
    (tmp_path / "late-library.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    try:
        rc, out = run_playbook(str(tmp_path / "late-library.yml"))
    finally:
        server.run("apt-get purge -y --autoremove python3-mysqldb")
    assert rc == 0, out[-3000:]
    flat = " ".join(out.split())
    assert "BEFORE=A MySQL module is required" in flat, out[-3000:]
    assert "AFTER=unable to connect to database" in flat, out[-3000:]


def test_apt_is_skipped_for_installed_packages_and_still_installs_a_removed_or_auto_marked_one():
    """A run calls apt only for a package list with a package missing from what the preflight read at its start
    (apt-mark showmanual): apt's own check costs most of a second of a server's CPU per task. A package removed
    since the last run is still installed again, and one that became marked automatic (apt autoremove would take
    it) is marked manual again, as apt's own check would do. The monitoring agent's packages come back in the base
    packages' apt run (one apt run fewer), the node exporter's settings in place before its first start."""
    cache = hosts_of("cacheservers")[0]
    h = node(cache)
    broken = h.run("apt-get remove -y -q unattended-upgrades prometheus-node-exporter && apt-mark auto nftables")
    assert broken.rc == 0, broken.stderr
    assert not h.package("unattended-upgrades").is_installed
    assert not h.package("prometheus-node-exporter").is_installed
    rc, out = run_playbook("site.yml", limit=[cache])
    assert rc == 0, out[-3000:]
    manual = set(h.run("apt-mark showmanual").stdout.split())
    assert h.package("unattended-upgrades").is_installed
    assert h.package("prometheus-node-exporter").is_installed
    assert {"unattended-upgrades", "nftables", "prometheus-node-exporter"} <= manual
    # One apt run brought both back.
    last = h.file("/var/log/apt/history.log").content_string.strip().split("\n\n")[-1]
    assert "unattended-upgrades:" in last and "prometheus-node-exporter:" in last, last
    # It listens on the private address only, as its settings say.
    private = h.check_output("hostname -I").split()[0]
    listening = [line.split()[3] for line in h.check_output("ss -Hltn").splitlines()
                 if line.split()[3].endswith(":9100")]
    assert listening == [f"{private}:9100"], listening
    # The lists of the cache server's other roles were all there, the agent's since the base packages' apt run:
    # apt was not called for them.
    for task in ("memcached : Install memcached", "monitoring_agent : Install the node exporter"):
        section = out.split(f"TASK [{task}", 1)[1].split("TASK [", 1)[0]
        assert f"skipping: [{cache}]" in section, section
    section = out.split("TASK [common : Install the base packages", 1)[1].split("TASK [", 1)[0]
    assert f"changed: [{cache}]" in section, section
    # The node exporter's settings are written once in the run, by the prepare play; the agents' play skips them.
    writes = [part.split("TASK [", 1)[0]
              for part in out.split("TASK [monitoring_agent : Configure the node exporter")[1:]]
    assert len(writes) == 2, writes
    assert f"skipping: [{cache}]" not in writes[0] and f"skipping: [{cache}]" in writes[1], writes


def _handler_results(out, host):
    """Each handler that a run reached: its name -> what it did on the host (ok, changed or skipping)."""
    found = {}
    for section in out.split("RUNNING HANDLER [")[1:]:
        name = section.split("]", 1)[0]
        status = re.search(rf"^(ok|changed|skipping): \[{re.escape(host)}\]", section, re.M)
        found[name] = status.group(1) if status else None
    return found


def test_a_changed_setting_runs_its_own_handler_only():
    """The role writes its settings files in one task: a change to one of them runs that file's handler, and the
    handlers of the others are skipped (journald is not restarted for a service limit, nor systemd re-executed for
    a journal setting)."""
    cache = hosts_of("cacheservers")[0]
    h = node(cache)
    try:
        rc, out = run_playbook("playbooks/common.yml", limit=[cache], extra_vars={"common_journal_max_use": "123M"})
        assert rc == 0, out[-3000:]
        assert "SystemMaxUse=123M" in h.file("/etc/systemd/journald.conf.d/60-stack.conf").content_string
        handlers = _handler_results(out, cache)
        assert handlers.get("common : Restart journald") == "changed", handlers
        assert handlers.get("common : Reexecute systemd") == "skipping", handlers

        rc, out = run_playbook("playbooks/common.yml", limit=[cache], extra_vars={"common_nofile_limit": "70001"})
        assert rc == 0, out[-3000:]
        handlers = _handler_results(out, cache)
        assert handlers.get("common : Reexecute systemd") == "ok", handlers
        # The journal's settings went back to the inventory's value in this run too: journald restarts again.
        assert handlers.get("common : Restart journald") == "changed", handlers
        assert handlers.get("common : Apply the kernel parameters") == "skipping", handlers
    finally:
        rc, out = run_playbook("playbooks/common.yml", limit=[cache])
    assert rc == 0, out[-3000:]
    assert "70001" not in h.file("/etc/systemd/system.conf.d/60-stack.conf").content_string


def test_a_time_zone_changed_by_hand_is_set_back_and_then_left_alone():
    """The role reads the zone /etc/localtime links to (what timedatectl reports) and calls the time zone module
    only where it names another zone: a host set to another zone by hand is set back to the inventory's zone, and
    the next run leaves it alone (the module skipped)."""
    cache = hosts_of("cacheservers")[0]
    h = node(cache)
    task = "common : Set the time zone"
    moved = h.run("ln -sfn /usr/share/zoneinfo/Europe/Paris /etc/localtime && date +%Z")
    assert moved.rc == 0, moved.stderr
    assert moved.stdout.strip() in ("CET", "CEST"), moved.stdout
    try:
        rc, out = run_playbook("playbooks/common.yml", limit=[cache])
        assert rc == 0, out[-3000:]
        assert task in changed_tasks(out).get(cache, []), out[-3000:]
        assert h.file("/etc/localtime").linked_to.endswith("/zoneinfo/Etc/UTC")
        assert h.check_output("timedatectl show --property Timezone --value") == "Etc/UTC"
        rc, out = run_playbook("playbooks/common.yml", limit=[cache])
        assert rc == 0, out[-3000:]
        section = out.split(f"TASK [{task}]", 1)[1].split("TASK [", 1)[0]
        assert f"skipping: [{cache}]" in section, section
    finally:
        h.run("ln -sfn /usr/share/zoneinfo/Etc/UTC /etc/localtime")


def test_many_hosts_tasks_forked_on_one_server_at_once_never_hang(tmp_path):
    """Tasks of many hosts delegated to one server at once (the agents' certificates, signed on the monitoring
    host, each host at its own pace) each run their module in a child forked from the same parent on that server
    (Mitogen, ansible.cfg's strategy). A child forked while that parent waited for a module another child had asked
    for took the request as its own and waited forever: the run hung (one agents' play in three on the lab; this
    play, sixteen hosts' collection modules on one server, every time). Sixteen names for one server here: Mitogen
    reaches it through one connection, as it does a delegated task's server."""
    target = hosts_of("cacheservers")[0]
    connection = {key: value for key, value in inventory().get_variables(target).items()
                  if key.startswith("ansible_") and key not in ("ansible_facts", "ansible_play_hosts")}
    names = [f"fork-{n:02d}" for n in range(16)]
    (tmp_path / "aliases.yml").write_text(yaml.safe_dump(
        {"fork_aliases": {"hosts": {name: dict(connection) for name in names}}}))
    play = {"name": "Collection modules of sixteen hosts forked on one server at once", "hosts": "fork_aliases",
            "gather_facts": False, "become": True, "strategy": "mitogen_free", "tasks": [
                {"name": "Make a key in memory", "community.crypto.openssl_privatekey_pipe": {"type": "ECC",
                                                                                              "curve": "secp256r1"},
                 "register": "key", "no_log": True},
                {"name": "Read the key", "community.crypto.openssl_privatekey_info": {
                    "content": "{{ key.privatekey }}"}, "no_log": True},
                {"name": "Read a kernel setting", "ansible.posix.sysctl": {"name": "net.core.somaxconn",
                                                                           "value": "4096"},
                 "check_mode": True},
                {"name": "Read a setting", "community.general.ini_file": {
                    "path": "/etc/systemd/journald.conf", "section": "Journal", "option": "Storage",
                    "value": "persistent"}, "check_mode": True}]}
    (tmp_path / "fork-aliases.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    for attempt in range(2):
        rc, out = run_playbook(str(tmp_path / "fork-aliases.yml"), str(tmp_path / "aliases.yml"), timeout=180)
        assert rc != 124, f"attempt {attempt + 1} hung (killed after 180 s):\n" + out[-3000:]
        assert rc == 0, out[-3000:]
        assert all(f"{name} " in out.split("PLAY RECAP", 1)[1] for name in names), out[-3000:]
