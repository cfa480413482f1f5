/// The console's stylesheet and script, served from the binary (`/static/…`): no font, framework
/// or file from the internet.
enum ConsoleAssets {
    static let css = """
        :root { --ink: #1d2430; --muted: #5b6574; --line: #d8dde5; --bg: #f6f7f9; --accent: #1f6feb;
          --alert: #c62828; --ok: #2e7d32; --warn: #b26a00; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
          background: var(--bg); }
        header { display: flex; align-items: center; gap: 24px; padding: 10px 24px; background: #0f1722;
          color: #fff; }
        header .brand { font-weight: 700; letter-spacing: .04em; }
        header nav a { color: #c9d4e3; text-decoration: none; margin-right: 16px; }
        header nav a.current { color: #fff; border-bottom: 2px solid var(--accent); }
        header .who { margin-left: auto; color: #c9d4e3; }
        header form { display: inline; }
        header button { background: none; border: 1px solid #c9d4e3; color: #c9d4e3; border-radius: 4px;
          padding: 2px 8px; cursor: pointer; }
        main { padding: 20px 24px; max-width: 1200px; }
        h1 { font-size: 20px; margin: 0 0 4px; }
        p.sub { color: var(--muted); margin: 0 0 16px; }
        table { border-collapse: collapse; width: 100%; background: #fff; margin: 8px 0 20px; }
        th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { font-weight: 600; color: var(--muted); background: #fafbfc; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        tr.alert td { background: #fdecea; }
        tr.alert td:first-child { border-left: 4px solid var(--alert); }
        .state-online { color: var(--ok); font-weight: 600; }
        .state-offline { color: var(--alert); font-weight: 600; }
        .flag { display: inline-block; background: #fff3e0; color: var(--warn); border-radius: 3px;
          padding: 0 6px; margin-right: 4px; font-size: 12px; }
        dl.figures { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 20px; }
        dl.figures div { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px;
          min-width: 180px; }
        dl.figures dt { color: var(--muted); font-size: 12px; }
        dl.figures dd { margin: 2px 0 0; font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
        figure.chart { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 8px 0 20px;
          padding: 10px 14px; }
        figure.chart svg { width: 100%; height: auto; }
        figcaption { font-weight: 600; margin-bottom: 4px; }
        .axis { stroke: #9aa4b2; stroke-width: 1; }
        .tick { fill: var(--muted); font-size: 11px; }
        polyline.series { fill: none; stroke-width: 2.5; }
        .issued { stroke: var(--accent); color: var(--accent); }
        .redeemed { stroke: #e36209; color: #e36209; }
        .legend .key::before { content: "\\25A0 "; }
        svg.bar { width: 120px; height: 10px; vertical-align: middle; }
        svg.bar .track { fill: #e6e9ee; }
        svg.bar .fill { fill: var(--accent); }
        svg.bar.alert .fill { fill: var(--alert); }
        form.inline { display: flex; gap: 8px; align-items: end; flex-wrap: wrap; margin: 8px 0 16px; }
        label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
        input, select { font: inherit; padding: 4px 6px; border: 1px solid var(--line); border-radius: 4px; }
        button.primary { background: var(--accent); color: #fff; border: 0; border-radius: 4px; padding: 6px 12px;
          cursor: pointer; }
        .notice { background: #e8f1fe; border: 1px solid #b6d0fb; padding: 8px 12px; border-radius: 4px; }
        .error { background: #fdecea; border: 1px solid #f5b5ae; padding: 8px 12px; border-radius: 4px; }
        p.empty { color: var(--muted); }
        code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
        """

    /// Live refresh: a page whose `main` has `data-refresh-ms` fetches itself with `partial=1`
    /// that often and swaps its figures in, unless the operator is typing in a form.
    static let javascript = """
        (function () {
          var main = document.getElementById("main");
          if (!main) { return; }
          var every = parseInt(main.getAttribute("data-refresh-ms") || "0", 10);
          if (!every) { return; }
          function typing() {
            var active = document.activeElement;
            return active && (active.tagName === "INPUT" || active.tagName === "SELECT" || active.tagName === "TEXTAREA");
          }
          function refresh() {
            if (typing()) { return; }
            var url = new URL(window.location.href);
            url.searchParams.set("partial", "1");
            fetch(url.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
              .then(function (response) {
                if (response.status === 401) { window.location.reload(); return null; }
                return response.ok ? response.text() : null;
              })
              .then(function (html) {
                if (html !== null && html !== undefined) {
                  main.innerHTML = html;
                  main.setAttribute("data-refreshed", String(Date.now()));
                }
              })
              .catch(function () {});
          }
          window.setInterval(refresh, every);
        })();
        """
}
