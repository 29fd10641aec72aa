# The notes' UDP receiver (001 §3.1.2), unchanged but for the address: it binds
# 127.0.0.1 port 0 and prints "listening on ADDR" on stderr like our servers, and
# a timeout keeps a test from hanging if nothing ever arrives.
from socket import *
import sys

# 1.创建一个服务端的socket
socket_server = socket(AF_INET, SOCK_DGRAM)
socket_server.settimeout(20)

# 2.定义服务器端的IP地址和端口号
host_port = ('127.0.0.1', 0)

# 3.服务器端的Socket 绑定地址和端口
# 只有绑定了地址和端口，才能称之为服务器的Socket
socket_server.bind(host_port)
print("listening on 127.0.0.1:%d" % socket_server.getsockname()[1], file=sys.stderr, flush=True)

# 4.接受客户端发送过来的数据,每次接受1KB的数据
data = socket_server.recvfrom(1024)
print(data)

# 5.处理二进制的数据报
# 里面是一个元组，第一个值是数据内容，第二个值是源IP地址、源端口号
data_utf8 = data[0].decode('utf-8')
print(data_utf8)

# 6.关闭套接字，释放资源
socket_server.close()
