/** Hash-based routing: `#/login`, `#/account`, `#/admin/users`, ... */
export const ROUTES = ["login", "register", "account", "admin/users", "admin/audit"] as const;
export type RouteName = (typeof ROUTES)[number] | "home" | "not-found";

function isRoute(path: string): path is (typeof ROUTES)[number] {
  return (ROUTES as readonly string[]).includes(path);
}

function readHash(): RouteName {
  const path = decodeURIComponent(location.hash.replace(/^#\/?/, "")).replace(/\/+$/, "");
  if (path === "") return "home";
  return isRoute(path) ? path : "not-found";
}

class Router {
  route = $state<RouteName>(readHash());

  constructor() {
    window.addEventListener("hashchange", () => {
      this.route = readHash();
    });
  }
}

export const router = new Router();

export function href(route: (typeof ROUTES)[number]): string {
  return `#/${route}`;
}

/** Go to `route`; `replace` keeps the history clean for redirects. */
export function navigate(route: (typeof ROUTES)[number], replace = false): void {
  if (replace) {
    history.replaceState(history.state, "", href(route));
    router.route = route;
  } else {
    location.hash = href(route);
  }
}
