#!/usr/bin/env python3
"""Import loops between the modules of each crate: for every `src/` given, the
strongly connected groups of file modules that import each other through `crate::`,
`super::` or `self::` paths (comments and the test module after `#[cfg(test)]` aside;
a module using its own parent does not count). Exits 1 when there is one.

    python3 scripts/check_module_loops.py emotion-core/src host-trainer/src ...
"""
import os
import re
import sys


def loops(root):
    """The import loops among the file modules under `root`."""
    mods={}
    for dp,dn,fn in os.walk(root):
        for f in fn:
            if not f.endswith('.rs'): continue
            p=os.path.join(dp,f); rel=os.path.relpath(p,root)[:-3].split(os.sep)
            if rel[-1] in ('mod','lib','main'): rel=rel[:-1]
            mods[tuple(rel)]=p
    def resolve(path):
        for n in range(len(path),-1,-1):
            if tuple(path[:n]) in mods: return tuple(path[:n])
        return ()
    edges={m:set() for m in mods}
    for m,p in mods.items():
        text=open(p).read().split('#[cfg(test)]')[0]
        text=re.sub(r'//.*','',text)
        ismod=os.path.basename(p) in ('mod.rs','lib.rs','main.rs')
        for g in re.finditer(r'\b(crate|super|self)((?:::\w+)*)::\{([^}]*)\}',text):
            for part in g.group(3).split(','):
                part=part.strip().split(' as ')[0]
                if part: text+='\n'+g.group(1)+g.group(2)+'::'+part
        for r in re.finditer(r'\b(crate|super|self)((?:::\w+)+)',text):
            segs=r.group(2).strip(':').split('::')
            if r.group(1)=='crate': base=[]
            elif r.group(1)=='self': base=list(m)
            else:
                base=list(m[:-1])
                while segs and segs[0]=='super': segs=segs[1:]; base=base[:-1]
            t=resolve(base+segs)
            if t!=m and t!=() and m[:len(t)]!=t: edges[m].add(t)
    index={};low={};st=[];on=set();sccs=[];i=[0]
    sys.setrecursionlimit(10000)
    def sc(v):
        index[v]=low[v]=i[0];i[0]+=1;st.append(v);on.add(v)
        for w in edges[v]:
            if w not in index: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],index[w])
        if low[v]==index[v]:
            c=[]
            while True:
                w=st.pop();on.discard(w);c.append(w)
                if w==v:break
            if len(c)>1: sccs.append(c)
    for v in edges:
        if v not in index: sc(v)
    return sccs, edges


def main():
    found = 0
    for root in sys.argv[1:]:
        sccs, edges = loops(root)
        for c in sccs:
            found += 1
            print(f"import loop in {root}:")
            for x in c:
                into = sorted("::".join(y) for y in edges[x] if y in c)
                print("   ", "::".join(x), "->", ", ".join(into))
    print(f"{found} import loop(s) in {len(sys.argv) - 1} crate(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
