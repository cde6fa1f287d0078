/// The portal's only asset: one stylesheet, carried in the binary (no fonts, no CDN, no script:
/// every control is a link or a form, so the pages work without JavaScript and the content
/// security policy can forbid scripts altogether).
enum PortalAssets {
    static let stylesheetPath = "/portal/assets/portal.css"

    static let stylesheet = """
    :root { --ink: #1b1f24; --muted: #57606a; --line: #d0d7de; --panel: #ffffff; --page: #f6f8fa;
            --accent: #0b5cad; --accent-ink: #ffffff; --danger: #b42318; --danger-bg: #fef3f2; --ok: #116329;
            --ok-bg: #dafbe1; --warn-bg: #fff8c5; --warn: #7d4e00; --radius: 8px; }
    * { box-sizing: border-box; }
    html { font-size: 16px; }
    body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
           color: var(--ink); background: var(--page); line-height: 1.45; }
    a { color: var(--accent); }
    a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, summary:focus-visible {
        outline: 3px solid #f0b400; outline-offset: 2px; }
    .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
    .chart-svg { display: block; margin-top: 1rem; max-width: 36rem; }
    .skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; z-index: 2; }
    header.top { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: baseline; justify-content: space-between;
                 padding: 1rem 1.25rem .25rem; max-width: 70rem; margin: 0 auto; }
    header.top h1 { font-size: 1.5rem; margin: 0; }
    header.top .who { color: var(--muted); font-size: .95rem; }
    header.top form { display: inline; }
    nav.tabs { max-width: 70rem; margin: 0 auto; padding: 0 1.25rem; display: flex; flex-wrap: wrap; gap: .25rem;
               border-bottom: 1px solid var(--line); }
    nav.tabs a { padding: .6rem .9rem; text-decoration: none; color: var(--muted); border-bottom: 3px solid transparent; }
    nav.tabs a[aria-current="page"] { color: var(--ink); border-bottom-color: var(--accent); font-weight: 600; }
    main { max-width: 70rem; margin: 0 auto; padding: 1.25rem; }
    section.card, div.card { background: var(--panel); border: 1px solid var(--line); border-radius: var(--radius);
                             padding: 1.1rem 1.25rem; margin-bottom: 1.25rem; }
    h2 { font-size: 1.15rem; margin: 0 0 .75rem; }
    h3 { font-size: 1rem; margin: 0 0 .5rem; }
    .balance { font-size: 2.6rem; font-weight: 700; letter-spacing: -.02em; margin: .1rem 0 .4rem; }
    .label { color: var(--muted); font-size: .9rem; }
    .row { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; }
    .actions { display: flex; flex-wrap: wrap; gap: .6rem; margin-top: .9rem; }
    .button, button { display: inline-block; font: inherit; font-weight: 600; padding: .55rem 1rem; border-radius: 6px;
                      border: 1px solid var(--accent); background: var(--accent); color: var(--accent-ink); text-decoration: none;
                      cursor: pointer; min-height: 2.5rem; }
    .button.secondary, button.secondary { background: #fff; color: var(--accent); }
    .button.danger, button.danger { background: var(--danger); border-color: var(--danger); }
    button[disabled], .button[aria-disabled="true"] { background: #8c959f; border-color: #8c959f; color: #fff; cursor: not-allowed; }
    .linkish { background: none; border: none; color: var(--accent); padding: 0; min-height: 0; font-weight: 400;
               text-decoration: underline; cursor: pointer; }
    .months { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .75rem; }
    .month { border: 1px solid var(--line); border-radius: var(--radius); padding: .75rem .9rem; background: #fff; }
    .month .used { color: var(--danger); font-size: 1.5rem; font-weight: 700; }
    .badge { display: inline-block; font-size: .75rem; font-weight: 700; padding: .1rem .5rem; border-radius: 999px;
             background: #ddf4ff; color: #0a3069; vertical-align: middle; }
    .badge.paid { background: var(--ok-bg); color: var(--ok); } .badge.void { background: #eaeef2; color: var(--muted); }
    .badge.open, .badge.draft { background: var(--warn-bg); color: var(--warn); }
    .chart { display: flex; align-items: flex-end; gap: .75rem; height: 7rem; margin-top: 1rem; padding: 0 .25rem;
             border-bottom: 1px solid var(--line); }
    .chart .bar { flex: 1; display: flex; flex-direction: column; justify-content: flex-end; align-items: center; height: 100%; }
    .chart .fill { width: 70%; background: var(--danger); border-radius: 4px 4px 0 0; min-height: 2px; }
    .chart .name { font-size: .75rem; color: var(--muted); margin-top: .25rem; }
    .table-wrap { overflow-x: auto; }
    table { border-collapse: collapse; width: 100%; font-size: .95rem; }
    th, td { text-align: left; padding: .5rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
    td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
    .negative { color: var(--danger); } .positive { color: var(--ok); }
    .subtabs { display: flex; gap: .25rem; margin-bottom: .75rem; flex-wrap: wrap; }
    .subtabs a { padding: .35rem .8rem; border-radius: 999px; text-decoration: none; border: 1px solid var(--line); color: var(--ink); }
    .subtabs a[aria-current="page"] { background: var(--ink); color: #fff; border-color: var(--ink); }
    form.filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: flex-end; margin-bottom: .75rem; }
    label { display: block; font-size: .9rem; font-weight: 600; margin-bottom: .25rem; }
    input[type=text], input[type=number], select { font: inherit; padding: .45rem .55rem; border: 1px solid #8c959f;
                                                   border-radius: 6px; min-width: 9rem; background: #fff; color: var(--ink); }
    .field { margin-bottom: .9rem; } .hint { color: var(--muted); font-size: .85rem; margin-top: .2rem; }
    .check { display: flex; gap: .5rem; align-items: center; font-weight: 600; }
    .notice { border-radius: var(--radius); padding: .75rem 1rem; margin-bottom: 1rem; border: 1px solid; }
    .notice.ok { background: var(--ok-bg); border-color: #4ac26b; color: var(--ok); }
    .notice.error, .shortfall { background: var(--danger-bg); border-color: #fda29b; color: var(--danger); }
    .notice.warn { background: var(--warn-bg); border-color: #d4a72c; color: var(--warn); }
    .shortfall { border: 1px solid #fda29b; border-radius: var(--radius); padding: .75rem 1rem; font-weight: 600; }
    dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .4rem 1.25rem; margin: 0 0 1rem; }
    dl.facts + h3 { margin-top: 1.25rem; }
    dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; font-weight: 600; }
    .plans { display: grid; grid-template-columns: repeat(auto-fit, minmax(13rem, 1fr)); gap: .75rem; }
    .plan { border: 1px solid var(--line); border-radius: var(--radius); padding: .9rem; background: #fff; }
    .plan.current { border-color: var(--accent); box-shadow: 0 0 0 1px var(--accent) inset; }
    .plan .price { font-size: 1.3rem; font-weight: 700; }
    .pager { display: flex; justify-content: flex-end; gap: .75rem; margin-top: .75rem; }
    .invoice { background: #fff; max-width: 48rem; margin: 1.5rem auto; padding: 2rem; border: 1px solid var(--line); }
    .invoice h1 { font-size: 1.6rem; margin: 0 0 1rem; }
    @media (max-width: 40rem) { .balance { font-size: 2.1rem; } main { padding: .75rem; } th, td { padding: .4rem; } }
    @media print { nav.tabs, header.top form, .no-print { display: none !important; } body { background: #fff; }
                   .invoice { border: none; margin: 0; } }
    """
}
