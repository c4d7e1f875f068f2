// Integration specs boot hosts, vaults and databases in hooks: on a loaded 2-core CI machine that can
// take longer than jest's 5 s default, which applies to hooks (and tests) unless set per file here.
jest.setTimeout(60_000);
